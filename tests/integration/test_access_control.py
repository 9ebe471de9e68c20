"""AUTH=keys on real servers: every route refuses a missing key (403), a wrong key (401) and a
key without its scope (403 naming it), and accepts the right scope; key commands and
erasures are logged on the logs exchange without the key; rest-client.py says what is wrong."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading

import pytest
from werkzeug.serving import make_server

from imagescan import apikeys, keys, topology
from imagescan.logbus import LogBusHandler
from tests.conftest import REPO_ROOT
from tests.imagefactory import jpeg
from tests.integration import test_logging

log_queue = test_logging.log_queue  # the logging tests' fixture: a queue bound to every log message
PUBLIC = {"/healthz", "/readyz", "/metrics"}
REFUSALS = (401, 403, 429)


@pytest.fixture
def keys_app(settings):
    from rest.app import create_app

    app = create_app(settings.replace(auth="keys"))
    yield app
    app.extensions["imagescan"].publisher.close()


@pytest.fixture
def keys_client(keys_app):
    return keys_app.test_client()


@pytest.fixture
def scoped(redis_client):
    """One key per scope, and one with every scope."""
    made = {scope: apikeys.create(redis_client, frozenset({scope}), f"{scope} only")[0] for scope in apikeys.SCOPES}
    made["all"] = apikeys.create(redis_client, frozenset(apikeys.SCOPES), "everything")[0]
    return made


def with_key(key: str | None, address: str = "127.0.0.1") -> dict:
    return {"headers": {"x-api-key": key} if key is not None else {}, "environ_base": {"REMOTE_ADDR": address}}


@pytest.fixture
def stored(keys_client, scoped):
    """An image stored (not analysed), a job on it and an upload link, made with an upload key."""
    data = jpeg(seed=90)
    sha256 = hashlib.sha256(data).hexdigest()
    upload = with_key(scoped["upload"])
    assert keys_client.put("/image/a.jpg", data=data, **upload).status_code == 200
    job = keys_client.post("/jobs", data={"image": (io.BytesIO(data), "a.jpg")},
                           content_type="multipart/form-data", **upload).get_json()["job_id"]
    link = keys_client.post("/api/generate-upload-link", json={"expiry": 600}, **upload).get_json()["upload_id"]
    return {"sha": sha256, "job": job, "link": link, "data": data}


def route_table(stored) -> list[tuple[str, str, tuple[str, ...], dict]]:
    """(method, path, scopes needed, request arguments) for every route of the service."""
    sha, data = stored["sha"], stored["data"]
    image = {"data": data, "content_type": "image/jpg"}
    return [
        ("PUT", "/image/b.jpg", ("upload",), image),
        ("POST", "/image/b.jpg", ("upload",), image),
        ("POST", "/scan/image/b.jpg", ("upload",), image),
        ("POST", "/scan/url", ("upload",), {"json": {"url": ""}}),  # passes the key check, then 400
        ("POST", "/jobs", ("upload",), {"data": {"image": (io.BytesIO(data), "b.jpg")},
                                        "content_type": "multipart/form-data"}),
        ("POST", "/upload_file", ("upload",), {"data": {"image": (io.BytesIO(data), "b.jpg")},
                                               "content_type": "multipart/form-data"}),
        ("POST", "/api/generate-upload-link", ("upload",), {"json": {}}),
        ("POST", f"/api/upload-images/{stored['link']}", ("upload",),
         {"data": {"image_files": (io.BytesIO(data), "b.jpg")}, "content_type": "multipart/form-data"}),
        ("GET", f"/images/{sha}", ("read",), {}),
        ("GET", f"/hash/{sha}", ("read",), {}),
        ("GET", "/license/ABC123", ("read",), {}),
        ("GET", f"/match/{sha}", ("faces",), {}),
        ("GET", f"/jobs/{stored['job']}", ("read",), {}),
        ("GET", f"/jobs/{stored['job']}/output", ("read", "faces"), {}),
        *[("GET", f"/{sha}/{op}", ("read",), {}) for op in ("jpeg", "png", "grayscale", "mirror")],
        ("GET", f"/api/images/{sha}", ("read",), {}),
        ("GET", "/api/stats", ("read",), {}),
        ("GET", "/openapi.json", ("read",), {}),
        ("GET", "/docs", ("read",), {}),
        ("GET", "/docs/swagger-ui.css", ("read",), {}),
        ("DELETE", "/images/" + "ab" * 32, ("admin",), {}),
    ]


def call(client, method: str, path: str, arguments: dict, key: str | None, address: str = "127.0.0.1"):
    arguments = dict(arguments)
    if "data" in arguments and isinstance(arguments["data"], dict):  # file fields are read once: copy
        arguments["data"] = {name: (io.BytesIO(value[0].getvalue()), value[1]) if isinstance(value, tuple) else value
                             for name, value in arguments["data"].items()}
    return client.open(path, method=method, **arguments, **with_key(key, address))


def test_every_route_takes_the_right_scope_and_only_it(keys_client, scoped, stored):
    for number, (method, path, needed, arguments) in enumerate(route_table(stored)):
        where = f"{method} {path}"
        missing = call(keys_client, method, path, arguments, None)
        assert missing.status_code == 403, where
        assert missing.get_json()["required_scope"] == ",".join(needed), where
        wrong = call(keys_client, method, path, arguments, "isk_000000000000_wrong", f"10.1.{number}.1")
        assert wrong.status_code == 401, where
        for scope in apikeys.SCOPES:
            if scope in needed and len(needed) == 1:
                continue
            lacking = call(keys_client, method, path, arguments, scoped[scope])
            assert lacking.status_code == 403, f"{where} with a {scope} key"
            assert "lacks" in lacking.get_json()["error"], where
        accepted = call(keys_client, method, path, arguments, scoped["all"] if len(needed) > 1 else scoped[needed[0]])
        assert accepted.status_code not in REFUSALS, f"{where}: {accepted.status_code} {accepted.get_data()[:200]}"


def test_no_route_is_left_open(keys_app, keys_client):
    """Whatever routes the service has (new ones too), each needs a key unless it is public."""
    for number, rule in enumerate(keys_app.url_map.iter_rules()):
        if rule.rule in PUBLIC or rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue
        path = re.sub(r"<[^>]+>", "x" * 32, rule.rule)
        for method in sorted(rule.methods - {"OPTIONS", "HEAD"}):
            assert keys_client.open(path, method=method).status_code == 403, f"{method} {rule.rule}"
            wrong = keys_client.open(path, method=method, **with_key("nope", f"10.2.{number}.{len(method)}"))
            assert wrong.status_code == 401, f"{method} {rule.rule}"


def test_probes_stay_open(keys_client):
    assert keys_client.get("/healthz").status_code == 200
    assert keys_client.get("/readyz").status_code == 200


def test_face_boxes_need_the_faces_scope(keys_client, scoped, stored):
    both = apikeys.create(keys_client.application.extensions["imagescan"].redis, frozenset({"read", "faces"}))[0]
    assert keys_client.get(f"/images/{stored['sha']}", **with_key(scoped["read"])).get_json()["faces"] is None
    assert keys_client.get(f"/images/{stored['sha']}", **with_key(both)).get_json()["faces"] == []


def test_wrong_keys_lock_the_address_out_even_for_a_right_key(keys_client, scoped):
    for _ in range(20):
        assert keys_client.get("/api/stats", **with_key("isk_abc_wrong", "10.9.9.9")).status_code == 401
    locked = keys_client.get("/api/stats", **with_key(scoped["read"], "10.9.9.9"))
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert keys_client.get("/api/stats", **with_key(scoped["read"], "10.9.9.10")).status_code == 200


def test_a_revoked_key_is_refused_and_keys_are_stored_hashed(keys_client, redis_client, scoped):
    token = scoped["read"]
    key_id = token.split("_")[1]
    record = redis_client.hgetall(keys.api_key(key_id))
    assert record[b"hash"].decode() == hashlib.sha256(token.encode()).hexdigest()
    assert not any(token.encode() in value or token.split("_", 2)[2].encode() in value for value in record.values())
    assert keys_client.get("/api/stats", **with_key(token)).status_code == 200
    assert apikeys.revoke(redis_client, key_id)
    assert keys_client.get("/api/stats", **with_key(token)).status_code == 401


def test_seed_mode_ignores_scoped_keys_and_keeps_the_seed_behaviour(client, scoped):
    assert client.get("/api/stats").status_code == 403
    assert client.get("/api/stats", headers={"x-api-key": scoped["all"]}).status_code == 401
    assert client.get("/api/stats", headers={"x-api-key": "test-key-2"}).status_code == 200
    assert client.get("/license/ABC123").status_code == 200  # the other seed APIs stay open


# -- logging of key actions and erasures ---------------------------------------------


def keys_command(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REDIS_HOST": settings.redis_host, "REDIS_PORT": str(settings.redis_port),
           "RABBITMQ_HOST": settings.rabbitmq_host, "RABBITMQ_PORT": str(settings.rabbitmq_port),
           "HOSTNAME": "keyhost", "REDIS_CLUSTER": "1" if settings.redis_cluster else "0"}
    return subprocess.run([sys.executable, "-m", "imagescan.apikeys", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=REPO_ROOT, check=False)


def audits(seen) -> list[tuple[str, dict]]:
    return [(key, doc) for key, doc in seen if "audit" in doc]


def test_key_commands_work_and_are_logged_without_the_key(settings, redis_client, log_queue):
    created = keys_command(settings, "create", "--scope", "read,faces", "--label", "dashboard")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    key = apikeys.lookup(redis_client, token)
    assert key is not None and key.scopes == {"read", "faces"} and key.label == "dashboard"
    listed = keys_command(settings, "list")
    assert key.key_id in listed.stdout and "read" in listed.stdout and token not in listed.stdout
    assert keys_command(settings, "revoke", key.key_id).returncode == 0
    assert apikeys.lookup(redis_client, token) is None
    assert keys_command(settings, "revoke", key.key_id).returncode == 1
    assert keys_command(settings, "create", "--scope", "everything").returncode == 2

    seen = log_queue(lambda seen: len(audits(seen)) >= 3)
    actions = [(routing, doc["audit"], doc["key_id"]) for routing, doc in audits(seen)]
    assert actions == [("keyhost.rest.info", "created", key.key_id), ("keyhost.rest.info", "listed", "*"),
                       ("keyhost.rest.info", "revoked", key.key_id)]
    assert all(doc["who"] and doc["at"] for _, doc in audits(seen))
    assert not any(token.split("_", 2)[2] in json.dumps(doc) for _, doc in seen)


def test_an_erasure_is_logged_with_who_and_what(settings, keys_client, scoped, stored, log_queue):
    handler = LogBusHandler(settings, "rest")
    audit = logging.getLogger("imagescan.audit")
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    try:
        assert keys_client.delete(f"/images/{stored['sha']}", **with_key(scoped["admin"])).status_code == 200
        seen = log_queue(lambda seen: audits(seen))
    finally:
        audit.removeHandler(handler)
    ((routing, doc),) = audits(seen)
    assert routing == topology.log_routing_key(settings.hostname, "rest", "info")
    assert doc["audit"] == "erased" and doc["sha256"] == stored["sha"] and doc["at"]
    assert doc["who"].startswith(f"key {scoped['admin'].split('_')[1]}")
    assert not any(token.split("_", 2)[2] in json.dumps(doc) for token in scoped.values() for _, doc in seen)


# -- rest-client.py ---------------------------------------------------------------------


@pytest.fixture
def keys_server(keys_app):
    http = make_server("127.0.0.1", 0, keys_app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{http.server_port}"
    http.shutdown()


def client_run(*args: str, key_env: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "IMAGESCAN_API_KEY"}
    if key_env:
        env["IMAGESCAN_API_KEY"] = key_env
    return subprocess.run([sys.executable, str(REPO_ROOT / "rest-client.py"), *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def test_rest_client_sends_the_key_and_says_what_is_wrong(keys_server, scoped, stored):
    missing = client_run("--host", keys_server, "show", stored["sha"])
    assert missing.returncode == 1 and "needs an API key with the read scope" in missing.stderr
    assert "--key" in missing.stderr and "IMAGESCAN_API_KEY" in missing.stderr
    wrong = client_run("--host", keys_server, "--key", "isk_0_bad", "show", stored["sha"])
    assert wrong.returncode == 1 and "refused the API key" in wrong.stderr
    lacking = client_run("--host", keys_server, "match", stored["sha"], key_env=scoped["read"])
    assert lacking.returncode == 1 and "lacks the scope" in lacking.stderr and "faces" in lacking.stderr
    shown = client_run("--host", keys_server, "show", stored["sha"], key_env=scoped["read"])
    assert shown.returncode == 0 and json.loads(shown.stdout)["digests"]["sha256"] == stored["sha"]
    erased = client_run("--host", keys_server, "--key", scoped["admin"], "delete", stored["sha"])
    assert erased.returncode == 0 and json.loads(erased.stdout)["status"] == "erased"
