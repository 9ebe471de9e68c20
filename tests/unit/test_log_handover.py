"""Log records handed to a background thread in batches: none lost, none reordered, and
what is still waiting at shutdown is written."""

from __future__ import annotations

import io
import json
import logging

from imagescan import logbus


def writer_to(stream: io.StringIO) -> logbus._StderrWriter:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logbus.JsonFormatter("rest", "host"))
    return logbus._StderrWriter(handler)


def record(i: int) -> logging.LogRecord:
    return logging.makeLogRecord({"name": "imagescan.rest", "levelno": logging.INFO, "levelname": "INFO",
                                  "msg": "call %d", "args": (i,), "request_id": f"r{i}"})


def test_a_burst_is_written_whole_and_in_order_by_the_time_the_writer_stops():
    stream = io.StringIO()
    writer = writer_to(stream)
    for i in range(2000):  # more than one batch
        writer.records.put(record(i))
    writer.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [f"call {i}" for i in range(2000)]
    assert lines[7]["request_id"] == "r7" and lines[7]["service"] == "rest"


def test_a_record_that_cannot_be_formatted_does_not_take_the_others_with_it(monkeypatch):
    stream = io.StringIO()
    writer = writer_to(stream)
    monkeypatch.setattr(writer.handler, "handleError", lambda record: None)
    broken = record(1)
    broken.args = ("too", "many", "arguments")
    for item in (record(0), broken, record(2)):
        writer.records.put(item)
    writer.stop()
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["call 0", "call 2"]


def test_the_handover_keeps_at_most_its_bound_and_gives_batches(monkeypatch):
    monkeypatch.setattr(logbus, "_QUEUE_SIZE", 10)
    monkeypatch.setattr(logbus, "_BATCH", 4)
    handover = logbus._Handover()
    for i in range(15):
        handover.put(i)
    assert handover.take() == [0, 1, 2, 3]
    assert handover.take() + handover.take() == [4, 5, 6, 7, 8, 9]
    assert not handover


def test_the_taker_waits_out_the_handover_interval_unless_a_whole_batch_waits(monkeypatch):
    """Under steady load records keep arriving: a taker that came straight back would take
    them one or two at a time, paying a write and a flush for each."""
    monkeypatch.setattr(logbus, "_BATCH", 4)
    slept = []
    monkeypatch.setattr(logbus.time, "sleep", slept.append)
    handover = logbus._Handover()
    handover.put(0)
    assert handover.take() == [0] and slept == []  # the first take does not wait
    handover.put(1)
    assert handover.take() == [1]
    assert len(slept) == 1 and 0 < slept[0] <= logbus.HANDOVER_SECONDS  # paced
    for i in range(4):
        handover.put(i)
    assert handover.take() == [0, 1, 2, 3] and len(slept) == 1  # a whole batch: taken at once


def test_timestamps_are_iso_utc_with_milliseconds_as_datetime_writes_them():
    from datetime import UTC, datetime
    moments = [0.0, 1.5, 1_700_000_000.0012, 1_700_000_000.9999996, 1_561_890_829.701, 1_861_342_945.998]
    moments += [1_800_000_000 + i / 997 for i in range(3000)]  # many milliseconds of a few seconds
    for moment in moments:
        assert logbus._timestamp(moment) == datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
