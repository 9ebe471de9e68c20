"""Instructions per request of the REST app and of the bare reference app, counted by valgrind.

    .venv/bin/python bench/request_instructions.py                 # GET /healthz, about 4 minutes
    .venv/bin/python bench/request_instructions.py --route upload --requests 300 --warmup 50  # ~7 min

Each app's WSGI callable is called in one process, without a server or a client, under
`valgrind --tool=callgrind`, once with --warmup requests and once with --warmup + --requests;
the difference divided by --requests is what one request costs, background threads included
(the REST's log lines are formatted and written to stderr on one; the log bus is off).
`upload`: distinct 104 KB JPEGs (`throughput.variant` of `throughput.upload_photo`), against
a Redis and a RabbitMQ started for the run (blobs in Redis, as in `make bench`; no worker):
every upload stored, recorded and its work message confirmed; building each body is counted
for both apps. Instruction counts do not move with the machine's load, unlike wrk's rates and
CPU times on a shared machine, so this is the steady figure of how much heavier the REST's
request is than the bare app's; gunicorn's own work, the same for both, is not in it, nor is
the work of Redis and RabbitMQ.
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import shutil
import subprocess
import sys

from stack import REPO_ROOT, Stack

_COLLECTED = re.compile(r"Collected : (\d+)")


ROUTES = {"healthz": ("GET", "/healthz"), "upload": ("PUT", "/image/bench-{i}.jpg")}


def serve(app_name: str, route: str, requests: int, tag: str) -> None:
    """The child: `requests` calls of the app's WSGI callable (run under callgrind)."""
    sys.path.insert(0, str(REPO_ROOT))
    from throughput import upload_photo, variant

    from imagescan.config import Settings
    from imagescan.logbus import configure_logging

    if app_name == "rest":
        from rest.app import create_app

        settings = Settings.from_env()
        configure_logging(settings, "rest", to_broker=False)
        app = create_app(settings)
    else:
        from bare_app import create_bare_app

        app = create_bare_app()
    method, path = ROUTES[route]
    photo = upload_photo() if method == "PUT" else b""
    statuses = set()
    for i in range(requests):
        body = variant(photo, f"{tag}-{i}") if photo else b""
        answer = app.wsgi_app(_environ(method, path.format(i=i), body),
                              lambda status, headers, exc_info=None: statuses.add(status))
        for _chunk in answer:
            pass
        getattr(answer, "close", lambda: None)()
    logging.shutdown()
    if statuses != {"200 OK"}:
        sys.exit(f"answers other than 200: {statuses}")


def _environ(method: str, path: str, body: bytes) -> dict:
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "bench",
            "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "bench", "HTTP_USER_AGENT": "wrk", "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "image/jpeg" if body else ""}


def instructions(app_name: str, route: str, requests: int, env: dict, tag: str) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--serve", app_name, "--route", route, "--requests", str(requests), "--tag", tag],
        check=False, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{app_name} {route}: {done.stderr[-2000:]}")
    return int(_COLLECTED.findall(done.stderr)[-1])


def per_request(app_name: str, args, env: dict) -> float:
    """Tags keep every run's uploads distinct: each is a new image, as in the wrk bench."""
    tag = f"{app_name}-{env.get('LOG_LEVEL', 'INFO')}"
    base = instructions(app_name, args.route, args.warmup, env, f"{tag}-warm")
    return (instructions(app_name, args.route, args.warmup + args.requests, env, f"{tag}-all") - base) / args.requests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--route", choices=tuple(ROUTES), default="healthz")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--serve", choices=("rest", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.route, args.requests, args.tag)
        return 0
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind (Debian package valgrind)")
    stack = Stack(rabbit=args.route == "upload")  # a Redis either way; the REST's store needs one
    try:
        env = stack.env()
        rows = [("bare app", per_request("bare", args, env)),
                ("REST, LOG_LEVEL=INFO", per_request("rest", args, env)),
                ("REST, LOG_LEVEL=WARNING", per_request("rest", args, {**env, "LOG_LEVEL": "WARNING"}))]
    finally:
        stack.stop()
    bare = rows[0][1]
    method, path = ROUTES[args.route]
    print(f"| {method} {path.format(i='<n>')}, in one process | instructions per request | beyond the bare app |")
    print("|---|---|---|")
    for name, count in rows:
        print(f"| {name} | {count / 1000:,.0f} k | {(count - bare) / 1000:,.0f} k |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
