"""Instructions per request of the REST app and of the bare reference app, counted by valgrind.

    .venv/bin/python bench/request_instructions.py            # GET /healthz, about 2 minutes
    .venv/bin/python bench/request_instructions.py --requests 2000

Each app's WSGI callable is called in one process, without a server or a client, under
`valgrind --tool=callgrind`, once with --warmup requests and once with --warmup + --requests;
the difference divided by --requests is what one request costs, background threads included
(the REST's log lines are formatted and written to stderr on one; the log bus is off, since
it needs a broker). Instruction counts do not move with the machine's load, unlike wrk's
rates and CPU times on a shared machine, so this is the steady figure of how much heavier the
REST's fixed cost of a request is than the bare app's; gunicorn's own work, the same for both,
is not in it.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import shutil
import subprocess
import sys

from stack import REPO_ROOT

_COLLECTED = re.compile(r"Collected : (\d+)")


def serve(app_name: str, path: str, requests: int) -> None:
    """The child: `requests` calls of the app's WSGI callable (run under callgrind)."""
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("RABBITMQ_PORT", "1")  # no broker: uploads are not measured here
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
    for _ in range(requests):
        body = app.wsgi_app(_environ(path), lambda status, headers, exc_info=None: None)
        for _chunk in body:
            pass
        getattr(body, "close", lambda: None)()
    logging.shutdown()


def _environ(path: str) -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "bench",
            "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "bench", "HTTP_USER_AGENT": "wrk"}


def instructions(app_name: str, path: str, requests: int, env: dict) -> int:
    output = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--serve", app_name, "--path", path, "--requests", str(requests)],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stderr
    return int(_COLLECTED.findall(output)[-1])


def per_request(app_name: str, args, env: dict) -> float:
    base = instructions(app_name, args.path, args.warmup, env)
    return (instructions(app_name, args.path, args.warmup + args.requests, env) - base) / args.requests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--serve", choices=("rest", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.path, args.requests)
        return 0
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind (Debian package valgrind)")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    rows = [("bare app", per_request("bare", args, env)), ("REST, LOG_LEVEL=INFO", per_request("rest", args, env)),
            ("REST, LOG_LEVEL=WARNING", per_request("rest", args, {**env, "LOG_LEVEL": "WARNING"}))]
    bare = rows[0][1]
    print(f"| GET {args.path}, in one process | instructions per request | beyond the bare app |")
    print("|---|---|---|")
    for name, count in rows:
        print(f"| {name} | {count / 1000:,.0f} k | {(count - bare) / 1000:,.0f} k |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
