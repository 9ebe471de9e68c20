"""REST server settings compared side by side: gunicorn processes x threads, and the
interpreter's switch interval, on uploads and queries, in alternating runs.

    .venv/bin/python bench/rest_settings.py 2x8 4x4 2x4                 # ingest, 2 rounds
    .venv/bin/python bench/rest_settings.py 2x8 2x8@0.001 --rows queries --images 100000

A variant is `PROCESSESxTHREADS`, optionally `@SECONDS` for `sys.setswitchinterval` (the
interpreter's default is 0.005: how long a thread that wants the GIL waits before it asks
the holder to drop it). Every variant's REST, and for the ingest row a bare app (see
bare_app.py) under the same settings, runs against one Redis and one RabbitMQ; each round
measures every variant once, in reverse order every other round, so that a machine whose
speed drifts slows the variants alike. Printed: the median over the rounds of each figure,
and every round's ratio or p99, so that the spread shows.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import dataclass

from queries import populate, request_lists
from stack import Stack, wrk_with_cpu
from throughput import purge, upload_lines, upload_photo

from imagescan import topology
from imagescan.config import Settings

# Runs a service with a switch interval set first: gunicorn's worker processes are forked
# from it and keep it. argv: interval, then a module name or a script path.
LAUNCH = ("import runpy, sys; sys.setswitchinterval(float(sys.argv[1])); target = sys.argv[2]; "
          "sys.argv = [target]; runpy.run_path(target, run_name='__main__') if target.endswith('.py') "
          "else runpy.run_module(target, run_name='__main__', alter_sys=True)")
DEFAULT_SWITCH_INTERVAL = 0.005


@dataclass(frozen=True)
class Variant:
    processes: int
    threads: int
    switch_interval: float

    @classmethod
    def parse(cls, text: str) -> Variant:
        layout, _, interval = text.partition("@")
        processes, threads = (int(n) for n in layout.split("x"))
        return cls(processes, threads, float(interval or DEFAULT_SWITCH_INTERVAL))

    def __str__(self) -> str:
        return f"{self.processes}x{self.threads} @{self.switch_interval:g} s"

    def start(self, stack: Stack, target: str):
        return stack.http_service(["-c", LAUNCH, str(self.switch_interval), target],
                                  GUNICORN_WORKERS=str(self.processes), GUNICORN_THREADS=str(self.threads))


def alternating(items: list, round_number: int) -> list:
    return items if round_number % 2 == 0 else items[::-1]


def ingest(stack: Stack, variants: list[Variant], args) -> None:
    settings = Settings.from_env(stack.env())
    services = {v: (v.start(stack, "rest"), v.start(stack, "bench/bare_app.py")) for v in variants}
    photo, lines = upload_photo(), upload_lines(stack.root / "bodies", args.bodies, "settings")
    runs: dict[Variant, list[dict]] = {v: [] for v in variants}
    for round_number in range(args.rounds):
        for v in alternating(variants, round_number):
            (rest, rest_url), (bare, bare_url) = services[v]
            reference = wrk_with_cpu(bare_url, lines, {"bare": bare.pid}, connections=16,
                                     seconds=args.seconds, method="PUT")
            measured = wrk_with_cpu(rest_url, lines, {"rest": rest.pid}, connections=16,
                                    seconds=args.seconds, method="PUT")
            runs[v].append({"rate": measured["rate"], "ratio": measured["rate"] / reference["rate"],
                            "rest_cpu": measured["cpu_ms"]["rest"], "bare_cpu": reference["cpu_ms"]["bare"],
                            "p99": measured["p99_us"] / 1000, "non2xx": measured["non2xx"]})
            stack.redis.client().flushall()  # the next run's uploads are new images again
            purge(settings, topology.WORK_QUEUE)
    print(f"\nPUT /image, {len(photo) // 1024} KB JPEGs, 16 conns, {args.rounds} rounds of {args.seconds:g} s")
    print("| variant | rate | vs bare app | CPU ms per upload: REST / bare | p99 ms | ratio per round | non-2xx |")
    print("|---|---|---|---|---|---|---|")
    for v, rows in runs.items():
        median = _medians(rows)
        print(f"| {v} | {median['rate']:,.0f}/s | {median['ratio']:.2f} | {median['rest_cpu']:.2f} / "
              f"{median['bare_cpu']:.2f} | {median['p99']:.1f} | {_each(rows, 'ratio', '.2f')} | "
              f"{sum(row['non2xx'] for row in rows)} |")


def queries(stack: Stack, variants: list[Variant], args) -> None:
    populate(stack.env(), args.images, args.populate_processes)
    services = {v: v.start(stack, "rest") for v in variants}
    lists = request_lists(args.images, random.Random(7))
    runs: dict[tuple[str, Variant], list[dict]] = {}
    for round_number in range(args.rounds):
        for name, lines in lists.items():
            for v in alternating(variants, round_number):
                process, url = services[v]
                summary = wrk_with_cpu(url, lines, {"rest": process.pid}, connections=8, seconds=args.seconds)
                runs.setdefault((name, v), []).append({
                    "rate": summary["rate"], "p50": summary["p50_us"] / 1000, "p99": summary["p99_us"] / 1000,
                    "rest_cpu": summary["cpu_ms"]["rest"]})
    print(f"\nqueries, {args.images:,} images, 8 conns, {args.rounds} rounds of {args.seconds:g} s")
    print("| query | variant | rate | p50 ms | p99 ms | REST CPU ms per request | p99 per round |")
    print("|---|---|---|---|---|---|---|")
    for (name, v), rows in runs.items():
        median = _medians(rows)
        print(f"| {name} | {v} | {median['rate']:,.0f}/s | {median['p50']:.1f} | {median['p99']:.1f} | "
              f"{median['rest_cpu']:.2f} | {_each(rows, 'p99', '.1f')} |")


def _medians(rows: list[dict]) -> dict:
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def _each(rows: list[dict], key: str, spec: str) -> str:
    return ", ".join(format(row[key], spec) for row in rows)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", type=Variant.parse, help="PROCESSESxTHREADS[@SWITCH_SECONDS]")
    parser.add_argument("--rows", default="ingest", help="ingest, queries or both (comma-separated)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6, help="length of each wrk run")
    parser.add_argument("--bodies", type=int, default=1000, help="distinct upload bodies")
    parser.add_argument("--images", type=int, default=100_000, help="stored images for the query rows")
    parser.add_argument("--populate-processes", type=int, default=2)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = set(args.rows.split(","))
    for row, measure in (("ingest", ingest), ("queries", queries)):
        if row in rows:
            stack = Stack(rabbit=row == "ingest")
            try:
                measure(stack, args.variants, args)
            finally:
                stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
