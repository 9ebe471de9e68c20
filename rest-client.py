#!/usr/bin/env python3
"""Command-line client for the imagescan REST API.

    rest-client.py upload FILE_OR_FOLDER... [--parallel 4] [--wait]
    rest-client.py scan-url URL
    rest-client.py show HASH            the whole analysis of an image (any digest)
    rest-client.py hash CHECKSUM        plates and coordinates (plates API)
    rest-client.py license PLATE [--fuzzy N]
    rest-client.py match HASH           other images with a matching face
    rest-client.py wait HASH...         until each analysis is done or failed
    rest-client.py delete HASH          erase an image and everything made from it (admin)

--host defaults to localhost:5000 (or $IMAGESCAN_HOST). --key (or $IMAGESCAN_API_KEY) is sent
as `x-api-key`: a server with AUTH=keys needs one with the command's scope (upload, read,
faces for `match`, admin for `delete`). The course's own invocation
`rest-client.py HOST image FILE REPS` (upload FILE REPS times, print timings) still works.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import requests

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
TIMEOUT = (5, 120)


def base_url(host: str) -> str:
    return host.rstrip("/") if "://" in host else f"http://{host.rstrip('/')}"


def key_problem(status: int, body: dict, has_key: bool) -> str | None:
    """A sentence saying what is wrong with the API key, for a 401 or 403 answer."""
    scope = body.get("required_scope") if isinstance(body, dict) else None
    if status == 401:
        return "the server refused the API key (wrong or revoked): check --key or $IMAGESCAN_API_KEY"
    if status == 403 and not has_key:
        needed = f" with the {scope} scope" if scope else ""
        return f"the server needs an API key{needed}: pass --key KEY or set $IMAGESCAN_API_KEY"
    if status == 403 and scope:
        return f"the API key lacks the scope this needs ({scope}): ask for a key with it"
    return None


def show(response: requests.Response) -> int:
    try:
        body = response.json()
        print(json.dumps(body, indent=2))
    except ValueError:
        body = {}
        print(response.text)
    has_key = "x-api-key" in response.request.headers
    problem = key_problem(response.status_code, body, has_key)
    if problem:
        print(f"rest-client: {problem}", file=sys.stderr)
    return 0 if response.ok else 1


def new_session(key: str | None) -> requests.Session:
    session = requests.Session()
    if key:
        session.headers["x-api-key"] = key
    return session


def image_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            sys.exit(f"rest-client: no such file or folder: {raw}")
    return files


def upload_one(session: requests.Session, url: str, path: Path, bulk: bool = False) -> tuple[Path, int, dict]:
    # Bulk uploads say so: the service analyses single uploads and jobs before them.
    headers = {"Content-Type": "application/octet-stream"} | ({"X-Imagescan-Lane": "bulk"} if bulk else {})
    response = session.put(f"{url}/image/{requests.utils.quote(path.name)}", data=path.read_bytes(),
                           headers=headers, timeout=TIMEOUT)
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:200]}
    return path, response.status_code, body


def progress(total: int):
    try:
        from tqdm import tqdm

        return tqdm(total=total, unit="img", file=sys.stderr)
    except ImportError:  # the client also runs without tqdm, just without the bar
        class Quiet:
            def update(self, _n): pass
            def close(self): pass
        return Quiet()


def cmd_upload(args) -> int:
    url, files = base_url(args.host), image_files(args.paths)
    session, results, failures = new_session(args.key), {}, 0
    bar = progress(len(files))
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = [pool.submit(upload_one, session, url, path, len(files) > 1) for path in files]
        for future in as_completed(futures):
            path, status, body = future.result()
            bar.update(1)
            if status == 200:
                results[str(path)] = body["hash"]
            else:
                failures += 1
                problem = key_problem(status, body, bool(args.key))
                print(f"{path}: {status} {problem or body.get('error')}", file=sys.stderr)
    bar.close()
    print(json.dumps(results, indent=2))
    if args.wait and results:
        failures += wait_for(session, url, list(results.values()), args.timeout)
    return 1 if failures else 0


def wait_for(session: requests.Session, url: str, digests: list[str], timeout: float) -> int:
    """Poll until every analysis ends; prints one line per image; the number not done."""
    pending, deadline, not_done = set(digests), time.monotonic() + timeout, 0
    while pending and time.monotonic() < deadline:
        for digest in sorted(pending):
            response = session.get(f"{url}/images/{digest}", timeout=TIMEOUT)
            document = response.json()
            problem = key_problem(response.status_code, document, "x-api-key" in session.headers)
            if problem:
                print(f"rest-client: {problem}", file=sys.stderr)
                return len(pending)
            if document.get("status") in ("done", "failed"):
                pending.discard(digest)
                plates = ", ".join(p["plate"] for p in document.get("plates", [])) or "-"
                print(f"{digest} {document['status']} plates: {plates} faces: {len(document.get('faces') or [])}"
                      + (f" error: {document['error']}" if document.get("error") else ""))
                not_done += document["status"] != "done"
        time.sleep(0.5)
    for digest in sorted(pending):
        print(f"{digest} still pending after {timeout:.0f}s", file=sys.stderr)
    return not_done + len(pending)


def legacy(host: str, command: str, rest: list[str]) -> int:
    """`HOST image FILE REPS`: the course client's call, uploading one file REPS times."""
    if command != "image" or not 1 <= len(rest) <= 2:
        sys.exit("usage: rest-client.py HOST image FILE [REPS]")
    path, reps = Path(rest[0]), int(rest[1]) if len(rest) > 1 else 1
    url, session, started = base_url(host), requests.Session(), time.perf_counter()
    for _ in range(reps):
        t0 = time.perf_counter()
        response = session.put(f"{url}/image/{requests.utils.quote(path.name)}", data=path.read_bytes(),
                               headers={"Content-Type": "image/png"}, timeout=TIMEOUT)
        print(f"Response is {response.text.strip()} ({(time.perf_counter() - t0) * 1000:.1f} ms)")
    print(f"Took {(time.perf_counter() - started) * 1000 / max(reps, 1):.1f} ms per operation")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="rest-client.py", description=__doc__.splitlines()[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    top.add_argument("--host", default=os.environ.get("IMAGESCAN_HOST", "localhost:5000"))
    top.add_argument("--key", default=os.environ.get("IMAGESCAN_API_KEY") or None,
                     help="API key sent as x-api-key (default: $IMAGESCAN_API_KEY)")
    commands = top.add_subparsers(dest="command", required=True)
    upload = commands.add_parser("upload", help="upload files and whole folders")
    upload.add_argument("paths", nargs="+")
    upload.add_argument("--parallel", type=int, default=4)
    upload.add_argument("--wait", action="store_true", help="then wait for every analysis")
    upload.add_argument("--timeout", type=float, default=300)
    commands.add_parser("scan-url", help="have the service fetch and scan a URL").add_argument("url")
    commands.add_parser("show", help="the analysis of an image").add_argument("digest")
    commands.add_parser("hash", help="plates and coordinates of an image").add_argument("checksum")
    lic = commands.add_parser("license", help="images showing a plate")
    lic.add_argument("plate")
    lic.add_argument("--fuzzy", type=int, choices=(0, 1, 2), default=0,
                     help="tolerate N lookalike or missing characters")
    commands.add_parser("match", help="other images with a matching face").add_argument("digest")
    commands.add_parser("delete", help="erase an image everywhere (admin scope)").add_argument("digest")
    wait = commands.add_parser("wait", help="wait until analyses end")
    wait.add_argument("digests", nargs="+")
    wait.add_argument("--timeout", type=float, default=300)
    return top


def main(argv: list[str]) -> int:
    known = {"upload", "scan-url", "show", "hash", "license", "match", "wait", "delete", "-h", "--help", "--host",
             "--key"}
    if len(argv) >= 2 and argv[0] not in known and not argv[0].startswith("-"):
        return legacy(argv[0], argv[1], argv[2:])
    args = parser().parse_args(argv)
    url, session = base_url(args.host), new_session(args.key)
    try:
        if args.command == "upload":
            return cmd_upload(args)
        if args.command == "scan-url":
            return show(session.post(f"{url}/scan/url", json={"url": args.url}, timeout=TIMEOUT))
        if args.command == "show":
            return show(session.get(f"{url}/images/{args.digest}", timeout=TIMEOUT))
        if args.command == "hash":
            return show(session.get(f"{url}/hash/{args.checksum}", timeout=TIMEOUT))
        if args.command == "license":
            params = {"fuzzy": str(args.fuzzy)} if args.fuzzy else {}
            return show(session.get(f"{url}/license/{requests.utils.quote(args.plate)}", params=params,
                                     timeout=TIMEOUT))
        if args.command == "match":
            return show(session.get(f"{url}/match/{args.digest}", timeout=TIMEOUT))
        if args.command == "delete":
            return show(session.delete(f"{url}/images/{args.digest}", timeout=TIMEOUT))
        if args.command == "wait":
            return 1 if wait_for(session, url, args.digests, args.timeout) else 0
    except requests.ConnectionError as exc:
        print(f"rest-client: cannot reach {url}: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
