"""Metrics of the real services: `python -m rest` (gunicorn, two processes), `python -m worker`
(supervisor recycling its child every 2 images) and `python -m logs`, on the test's Redis and
RabbitMQ. After N uploads and one bad request the counters say exactly that; promtool accepts
every endpoint's output; a real Prometheus scrapes them and answers queries; every query of the
dashboard and the alerts names a metric the services expose."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO_ROOT, purge_work_queues
from tests.faults.servers import free_port, wait_until
from tests.imagefactory import jpeg

MONITORING = REPO_ROOT / "k8s" / "components" / "monitoring"
UPLOADS = 5
RECYCLE_EVERY = 2
DIGEST = re.compile(r"[0-9a-f]{32,}")


def fetch(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def put(url: str, data: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed with prometheus_client's parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(parsed: dict, name: str, **labels) -> float | None:
    return parsed.get((name, tuple(sorted(labels.items()))))


class Service:
    def __init__(self, name: str, module: str, env: dict, root: Path):
        self.log = root / f"{name}.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", module], cwd=REPO_ROOT, env=env,
                                            start_new_session=True, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(10)


class Stack:
    def __init__(self, root: Path, redis_port: int, rabbit_port: int):
        self.root = root
        self.rest_port, self.worker_port, self.logs_port = free_port(), free_port(), free_port()
        self.worker_dir = root / "worker-metrics"
        base = {key: val for key, val in os.environ.items()
                if not key.startswith(("REDIS_", "RABBITMQ_", "WORKER_", "METRICS_", "PROMETHEUS_"))}
        base.update({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_port), "RABBITMQ_HOST": "127.0.0.1",
                     "RABBITMQ_PORT": str(rabbit_port), "PLATE_ENGINE": "none", "FACE_ENGINE": "none",
                     "HOSTNAME": "metrics-test", "NETWORK_TIMEOUT": "2"})
        self.services = [
            Service("logs", "logs", {**base, "METRICS_PORT": str(self.logs_port)}, root),
            Service("rest", "rest", {**base, "PORT": str(self.rest_port), "GUNICORN_WORKERS": "2",
                                     "GUNICORN_THREADS": "2"}, root),
            Service("worker", "worker", {**base, "METRICS_PORT": str(self.worker_port),
                                         "METRICS_DIR": str(self.worker_dir),
                                         "WORKER_MAX_IMAGES": str(RECYCLE_EVERY),
                                         "WORKER_HEALTH_FILE": str(root / "worker.alive")}, root),
        ]
        wait_until(lambda: fetch(f"{self.rest}/readyz")[0] == 200 if self._answers(self.rest_port) else False,
                   60, "the REST to be ready", interval=0.3)
        wait_until(lambda: self._answers(self.worker_port) and self._answers(self.logs_port), 60,
                   "the worker and logs metrics ports", interval=0.3)

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            return fetch(f"http://127.0.0.1:{port}/metrics", timeout=2)[0] == 200
        except OSError:
            return False

    def scrape(self, port: int) -> str:
        status, body = fetch(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        return body.decode()

    def close(self) -> None:
        for service in reversed(self.services):
            service.stop()


@pytest.fixture(scope="module")
def stack(redis_server, rabbitmq_server, tmp_path_factory):
    redis.Redis(host=redis_server.host, port=redis_server.port).flushall()
    purge_work_queues(rabbitmq_server.host, rabbitmq_server.port)
    built = Stack(tmp_path_factory.mktemp("metrics"), redis_server.port, rabbitmq_server.port)
    try:
        md5s = []
        for seed in range(UPLOADS):
            status, body = put(f"{built.rest}/image/car-{seed}.jpg", jpeg(seed=700 + seed))
            assert status == 200, body
            md5s.append(body["hash"])
        status, body = put(f"{built.rest}/image/not-an-image.jpg", b"hello, not an image")
        assert status == 415, body

        def all_done():
            return all(json.loads(fetch(f"{built.rest}/images/{md5}")[1])["status"] == "done" for md5 in md5s)

        wait_until(all_done, 120, "every upload to be analysed", interval=0.3)
        built.md5s = md5s
        yield built
    finally:
        built.close()


def test_rest_counts_exactly_the_uploads_and_the_bad_request(stack):
    # Several scrapes: each may be answered by either gunicorn process; all see every count.
    for _ in range(4):
        rest = samples(stack.scrape(stack.rest_port))
        route = "/image/<path:filename>"
        assert value(rest, "imagescan_http_requests_total", route=route, method="PUT", status="200") == UPLOADS
        assert value(rest, "imagescan_http_requests_total", route=route, method="PUT", status="415") == 1
        assert value(rest, "imagescan_http_request_duration_seconds_count", route=route, method="PUT") == UPLOADS + 1
        assert value(rest, "imagescan_http_request_duration_seconds_bucket", route=route, method="PUT",
                     le="+Inf") == UPLOADS + 1
        assert value(rest, "imagescan_uploads_total", outcome="accepted", reason="new") == UPLOADS
        assert value(rest, "imagescan_uploads_total", outcome="refused", reason="unsupported") == 1
        assert value(rest, "imagescan_queue_messages", queue="work") == 0
        assert value(rest, "imagescan_queue_messages", queue="dead_letter") == 0
        assert value(rest, "imagescan_dependency_up", dependency="redis") == 1
        assert value(rest, "imagescan_dependency_up", dependency="rabbitmq") == 1
        for dependency in ("redis", "rabbitmq", "blob_store"):
            assert value(rest, "imagescan_dependency_errors_total", dependency=dependency) == 0


def test_worker_counts_survive_its_recycles(stack):
    worker = samples(stack.scrape(stack.worker_port))
    assert value(worker, "imagescan_worker_images_total", outcome="done") == UPLOADS
    assert value(worker, "imagescan_worker_attempts_total", kind="analyze", result="ok") == UPLOADS
    for step in ("decode", "exif", "plates", "faces"):
        assert value(worker, "imagescan_worker_analysis_seconds_count", step=step) == UPLOADS, step
    assert value(worker, "imagescan_worker_image_seconds_count") == UPLOADS
    recycles = value(worker, "imagescan_worker_process_restarts_total", reason="recycle")
    assert recycles == UPLOADS // RECYCLE_EVERY, "a child leaves after every 2 images"
    assert value(worker, "imagescan_worker_process_restarts_total", reason="crash") == 0
    assert value(worker, "imagescan_worker_dead_letters_total", kind="analyze") == 0
    assert value(worker, "imagescan_worker_face_index_faces") == 0
    assert value(worker, "imagescan_worker_face_index_sync_seconds_count") >= recycles + 1  # one per child start
    assert value(worker, "imagescan_worker_resident_memory_bytes") > 10 * 2**20
    wait_until(lambda: value(samples(stack.scrape(stack.worker_port)), "imagescan_worker_ready") == 1, 30,
               "the worker to report itself connected")
    # Finished children were folded into the archive: the directory does not grow per recycle
    # (up to three files each for the supervisor and the running child, plus two archives).
    files = sorted(path.name for path in stack.worker_dir.iterdir())
    assert len(files) <= 8, files
    assert {"counter_archive.db", "histogram_archive.db"} <= set(files)


def test_logs_service_counts_messages_by_service_and_level(stack):
    def rest_messages():
        return value(samples(stack.scrape(stack.logs_port)), "imagescan_logs_messages_total",
                     service="rest", level="info") or 0

    wait_until(lambda: rest_messages() >= UPLOADS + 1, 30, "the logs service to count the REST's messages")
    worker = value(samples(stack.scrape(stack.logs_port)), "imagescan_logs_messages_total",
                   service="worker", level="info")
    assert worker and worker >= UPLOADS


def test_label_values_are_bounded(stack):
    for port in (stack.rest_port, stack.worker_port, stack.logs_port):
        for (name, labels) in samples(stack.scrape(port)):
            for label, text in labels:
                assert not DIGEST.search(text), f"{name} {label}={text!r} holds a digest"
                assert "car-" not in text and "not-an-image" not in text, f"{name} {label}={text!r} is a filename"
                assert label != "route" or text.startswith("/") or text == "unmatched"


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: `make venv` installs the Debian package prometheus")
    return path


def test_promtool_accepts_every_endpoint(stack, promtool):
    for port in (stack.rest_port, stack.worker_port, stack.logs_port):
        result = subprocess.run([promtool, "check", "metrics"], input=stack.scrape(port), capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, f"port {port}: {result.stdout}{result.stderr}"


def exposed_names(stack) -> set[str]:
    return {name for port in (stack.rest_port, stack.worker_port, stack.logs_port)
            for name, _ in samples(stack.scrape(port))} | {"up"}


def metric_names_in(expression: str) -> set[str]:
    """Metric names a PromQL expression reads (ours all start with imagescan_, plus `up`)."""
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    return {name for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings)
            if name.startswith("imagescan_") or name == "up"}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboards" / "imagescan.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def alert_rules() -> list[dict]:
    rule = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    return [rule for group in rule["spec"]["groups"] for rule in group["rules"]]


def test_dashboard_and_alerts_read_only_metrics_that_exist(stack):
    exposed = exposed_names(stack)
    expressions = dashboard_expressions() + [rule["expr"] for rule in alert_rules()]
    assert len(expressions) >= 15
    for expression in expressions:
        names = metric_names_in(expression)
        assert names, f"no imagescan metric in {expression!r}"
        assert names <= exposed, f"{expression!r} reads {names - exposed}, which no service exposes"


def start_prometheus(root: Path, targets: dict[str, int]) -> tuple[subprocess.Popen, str]:
    rules = root / "alerts.yml"
    rules.write_text(yaml.safe_dump(yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())["spec"]))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                           for job, port in targets.items()],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with open(root / "prometheus.log", "ab") as log:
        process = subprocess.Popen(
            [shutil.which("prometheus") or "prometheus", f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process, f"http://127.0.0.1:{port}"


def query(base: str, expression: str) -> list[dict]:
    status, body = fetch(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
    document = json.loads(body)
    assert status == 200 and document["status"] == "success", document
    return document["data"]["result"]


def test_a_real_prometheus_scrapes_the_services_and_loads_the_alerts(stack, tmp_path):
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus not found: `make venv` installs the Debian package prometheus")
    targets = {"rest": stack.rest_port, "worker": stack.worker_port, "logs": stack.logs_port}
    process, base = start_prometheus(tmp_path, targets)
    try:
        def scraped():
            try:
                return len(query(base, "up == 1")) == len(targets)
            except OSError:
                return False

        wait_until(scraped, 60, "Prometheus to scrape every service", interval=0.5)
        accepted = query(base, 'sum(imagescan_uploads_total{outcome="accepted"})')
        assert float(accepted[0]["value"][1]) == UPLOADS
        done = query(base, 'imagescan_worker_images_total{outcome="done"}')
        assert [(r["metric"]["job"], float(r["value"][1])) for r in done] == [("worker", UPLOADS)]
        by_route = query(base, 'sum by (route) (imagescan_http_requests_total{method="PUT"})')
        assert {r["metric"]["route"]: float(r["value"][1]) for r in by_route} == {
            "/image/<path:filename>": UPLOADS + 1}
        status, body = fetch(f"{base}/api/v1/rules")
        assert status == 200
        groups = json.loads(body)["data"]["groups"]
        loaded = [rule for group in groups for rule in group["rules"]]
        assert len(loaded) == len(alert_rules())
        assert all(rule["health"] != "err" for rule in loaded), [r.get("lastError") for r in loaded]
    finally:
        process.terminate()
        process.wait(30)
