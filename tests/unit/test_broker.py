"""How the work publisher settles the messages it sent from the broker's confirms and returns
(the frames are built by hand; tests/integration/test_publisher.py runs against RabbitMQ)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pika
import pytest

from imagescan.broker import BrokerUnavailable, Publisher, _Message
from imagescan.config import Settings


@pytest.fixture
def in_flight():
    """A publisher whose five messages, tags 1 to 5, wait for their confirms."""
    publisher = Publisher(Settings(network_timeout=0.2))
    publisher._unconfirmed = {tag: _Message("analyze", b"{}") for tag in range(1, 6)}
    return publisher


def _confirm(publisher, method) -> None:
    publisher._on_confirm(SimpleNamespace(method=method))


def test_one_ack_confirms_every_message_up_to_its_tag_when_it_says_multiple(in_flight):
    sent = dict(in_flight._unconfirmed)
    _confirm(in_flight, pika.spec.Basic.Ack(delivery_tag=3, multiple=True))
    assert [tag for tag, message in sent.items() if message.settled.is_set()] == [1, 2, 3]
    assert all(sent[tag].error is None for tag in (1, 2, 3))
    assert sorted(in_flight._unconfirmed) == [4, 5]


def test_a_single_ack_or_nack_settles_its_own_message_only(in_flight):
    sent = dict(in_flight._unconfirmed)
    _confirm(in_flight, pika.spec.Basic.Nack(delivery_tag=4, multiple=False))
    _confirm(in_flight, pika.spec.Basic.Ack(delivery_tag=2, multiple=False))
    assert [tag for tag, message in sent.items() if message.settled.is_set()] == [2, 4]
    assert sent[4].error == "the broker refused the message" and sent[2].error is None
    assert sorted(in_flight._unconfirmed) == [1, 3, 5]


def test_a_returned_message_fails_when_its_confirm_comes(in_flight):
    sent = dict(in_flight._unconfirmed)
    in_flight._on_return(None, None, pika.BasicProperties(message_id="2"), b"{}")
    assert not sent[2].settled.is_set()  # the broker confirms a returned message after the return
    _confirm(in_flight, pika.spec.Basic.Ack(delivery_tag=2, multiple=True))
    assert sent[2].error == "the work queue is missing on the broker" and sent[1].error is None


def test_a_lost_connection_sends_again_what_was_sent_once_and_fails_the_rest(in_flight):
    sent = dict(in_flight._unconfirmed)
    for tag in (1, 2, 3):
        sent[tag].attempts = 1
    for tag in (4, 5):
        sent[tag].attempts = 2
    in_flight._lost(ConnectionResetError("reset"))
    assert list(in_flight._waiting) == [sent[1], sent[2], sent[3]]  # in the order they were sent
    assert all(sent[tag].settled.is_set() and "unreachable" in sent[tag].error for tag in (4, 5))
    assert not in_flight._unconfirmed


def test_a_publish_nobody_confirms_is_refused_in_bounded_time(monkeypatch):
    publisher = Publisher(Settings(network_timeout=0.2))
    monkeypatch.setattr(publisher, "_hand_over", lambda message: None)  # a broker that never answers
    with pytest.raises(BrokerUnavailable, match="slow to confirm"):
        publisher.publish("analyze", sha256="0" * 64)


def test_a_failure_inside_the_publisher_is_a_refusal_not_a_hang(monkeypatch):
    publisher = Publisher(Settings(network_timeout=5))
    monkeypatch.setattr(publisher, "_connect", lambda: 1 / 0)  # a bug, not a broker error
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="publisher failed"):
            publisher.publish("analyze", sha256="0" * 64)
        assert time.monotonic() - started < 5
        assert publisher._thread.is_alive()  # and it takes the next message
    finally:
        publisher.close()


def test_a_channel_that_refused_a_message_is_replaced(in_flight):
    in_flight._channel = SimpleNamespace(is_open=True)
    _confirm(in_flight, pika.spec.Basic.Ack(delivery_tag=1, multiple=False))
    in_flight._check_channel()  # confirms: the channel carries on
    _confirm(in_flight, pika.spec.Basic.Nack(delivery_tag=2, multiple=False))
    with pytest.raises(pika.exceptions.AMQPChannelError, match="refused a message"):
        in_flight._check_channel()


def test_closing_fails_what_was_sent_and_what_was_never_sent(in_flight):
    sent = list(in_flight._unconfirmed.values())
    never_sent = [_Message("analyze", b"{}") for _ in range(3)]
    in_flight._waiting.extend(never_sent)
    in_flight._lost(None)
    assert all(message.settled.is_set() and message.error == "the publisher is closed"
               for message in sent + never_sent)
    assert not in_flight._waiting and not in_flight._unconfirmed
