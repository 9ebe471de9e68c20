"""The end-to-end checks, from outside the containers: what a user and an operator would see.

run_stack() starts the pods in order, then: the course photo (with a geotag) through
rest-client.py, its plate and coordinates through /hash, a face match between two photos of
one person, /readyz, the logs pod's output, and an upload analysed after the worker
container was killed. It returns the figures (seconds, counts).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import piexif
import pika
import redis
import requests

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("IMAGESCAN_DATA", REPO.parent / "shared" / "data"))
# A photo whose plate the default engine reads right (the integration tests use it too).
COURSE_PHOTO = DATA / "plates" / "br" / "AYO9034.jpg"
SAME_PERSON = ("face_recognition/examples_knn_examples_train_obama_obama.jpg",
               "face_recognition/examples_knn_examples_train_obama_obama2.jpg")
LATITUDE, LONGITUDE = 48.1486, 17.1077
ANALYSIS_TIMEOUT = 300
START_TIMEOUT = 300


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception:  # noqa: BLE001, S110 - not there yet: try again until the deadline
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def geotagged(path: Path, latitude: float, longitude: float) -> bytes:
    def dms(value: float) -> tuple:
        value = abs(value)
        degrees, minutes = int(value), int(value % 1 * 60)
        seconds = round((value * 3600) % 60 * 100)
        return ((degrees, 1), (minutes, 1), (seconds, 100))

    gps = {piexif.GPSIFD.GPSLatitudeRef: b"N" if latitude >= 0 else b"S", piexif.GPSIFD.GPSLatitude: dms(latitude),
           piexif.GPSIFD.GPSLongitudeRef: b"E" if longitude >= 0 else b"W", piexif.GPSIFD.GPSLongitude: dms(longitude)}
    out = io.BytesIO()
    piexif.insert(piexif.dump({"GPS": gps}), path.read_bytes(), out)
    return out.getvalue()


def plate_of(path: Path) -> str:
    return re.sub(r"[^A-Z0-9]", "", path.with_suffix(".txt").read_text().split("\t")[5].upper())


class Checks:
    def __init__(self, stack, ports: dict, values: dict):
        self.stack, self.values = stack, values
        self.url = f"http://127.0.0.1:{ports['rest']}"
        self.host = f"127.0.0.1:{ports['rest']}"
        self.session = requests.Session()

    def status(self, digest: str) -> dict:
        return self.session.get(f"{self.url}/images/{digest}", timeout=10).json()

    def analysed(self, digest: str) -> dict:
        document = wait_until(lambda: (d := self.status(digest))["status"] in ("done", "failed") and d,
                              ANALYSIS_TIMEOUT, f"the analysis of {digest}")
        assert document["status"] == "done", document
        return document

    def upload_course_photo(self, workdir: Path) -> str:
        """rest-client.py's upload of the geotagged course photo, then /hash."""
        photo = workdir / "car.jpg"
        photo.write_bytes(geotagged(COURSE_PHOTO, LATITUDE, LONGITUDE))
        result = subprocess.run([sys.executable, str(REPO / "rest-client.py"), "--host", self.host,
                                 "upload", str(photo), "--wait", "--timeout", str(ANALYSIS_TIMEOUT)],
                                capture_output=True, text=True, timeout=ANALYSIS_TIMEOUT + 60, check=False)
        print(result.stdout, end="", file=sys.stderr)
        assert result.returncode == 0, result.stderr
        md5 = json.loads(result.stdout[: result.stdout.rindex("}") + 1])[str(photo)]
        assert md5 == hashlib.md5(photo.read_bytes()).hexdigest()
        entries = self.session.get(f"{self.url}/hash/{md5}", timeout=10).json()
        assert entries and entries[0]["license"] == plate_of(COURSE_PHOTO), entries
        assert abs(entries[0]["latitude"] - LATITUDE) < 1e-3, entries
        assert abs(entries[0]["longitude"] - LONGITUDE) < 1e-3, entries
        return f"/hash/{md5} -> {entries[0]['license']} at {entries[0]['latitude']:.4f},{entries[0]['longitude']:.4f}"

    def face_match(self) -> str:
        headers = {"x-api-key": self.values["API_KEY"], "content-type": "image/jpg"}
        names = ("first.jpg", "second.jpg")
        digests = []
        for name, relative in zip(names, SAME_PERSON):
            response = self.session.post(f"{self.url}/scan/image/{name}", headers=headers,
                                         data=(DATA / "faces" / relative).read_bytes(), timeout=60)
            assert response.status_code == 200, response.text
            digests.append(response.json()["hash"])
            self.analysed(digests[-1])
        matches = self.session.get(f"{self.url}/match/{digests[1]}", headers=headers, timeout=10).json()
        assert matches == [names[0]], matches
        return f"/match/{digests[1][:12]}... -> {matches}"

    def readyz(self) -> dict:
        response = self.session.get(f"{self.url}/readyz", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def log_lines(self) -> list[str]:
        """One `<host>.rest.info` and one `<host>.worker.info` line printed by the logs pod."""
        found = {}

        def both_seen():
            for component in ("rest", "worker"):
                match = re.search(rf"(?m)^\S+\.{component}\.info .*$", self.stack.logs("logs"))
                if match:
                    found[component] = match.group(0)
            return len(found) == 2

        wait_until(both_seen, 60, "rest and worker lines in the logs pod's output")
        return [found["rest"][:160], found["worker"][:160]]

    def survives_worker_kill(self) -> dict:
        """SIGKILL the worker container; an upload accepted right after it is still analysed
        (the message waits in RabbitMQ; podman restarts the container, as the kubelet would)."""
        container = self.stack.container("worker")
        restarts_before = restart_count(container)
        pid = int(podman_inspect(container, "{{.State.Pid}}"))
        os.kill(pid, 9)
        killed = time.monotonic()
        data = geotagged(COURSE_PHOTO, -LATITUDE, -LONGITUDE)
        response = self.session.put(f"{self.url}/image/after-kill.jpg", data=data, timeout=60)
        assert response.status_code == 200, response.text
        document = self.analysed(response.json()["hash"])
        restarts = restart_count(container) - restarts_before
        assert restarts >= 1, "the worker container was not restarted"
        return {"worker_kill_to_next_upload_analysed": round(time.monotonic() - killed, 1),
                "worker_restarts": restarts, "after_kill_plates": [p["plate"] for p in document.get("plates", [])]}


def podman_inspect(container: str, template: str) -> str:
    return subprocess.check_output(["podman", "inspect", "--format", template, container], text=True).strip()


def restart_count(container: str) -> int:
    return int(podman_inspect(container, "{{.RestartCount}}"))


def wait_for_infra(ports: dict, values: dict) -> None:
    wait_until(lambda: redis.Redis(port=ports["redis"], password=values["REDIS_PASSWORD"]).ping(),
               START_TIMEOUT, "Redis")
    credentials = pika.PlainCredentials(values["RABBITMQ_USER"], values["RABBITMQ_PASSWORD"])

    def rabbitmq_up() -> bool:
        pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", ports["rabbitmq"],
                                                          credentials=credentials)).close()
        return True

    wait_until(rabbitmq_up, START_TIMEOUT, "RabbitMQ", interval=1)


def first_worker_message(stack) -> bool:
    return "worker consuming" in stack.logs("worker")


def run_stack(stack, ports: dict, values: dict, s3_url: str | None, blob_store: str) -> dict:
    figures: dict = {"blob_store": blob_store}
    started = time.monotonic()
    stack.play("redis")
    stack.play("rabbitmq")
    wait_for_infra(ports, values)
    figures["infra_ready_seconds"] = round(time.monotonic() - started, 1)
    checks = Checks(stack, ports, values)
    rest_started = stack.play("rest")
    wait_until(lambda: checks.session.get(f"{checks.url}/readyz", timeout=5).status_code == 200,
               START_TIMEOUT, "/readyz 200")
    figures["rest_pod_start_to_readyz_200"] = round(time.monotonic() - rest_started, 1)
    stack.play("logs")
    worker_started = stack.play("worker")
    wait_until(lambda: first_worker_message(stack), START_TIMEOUT, "the worker's first message")
    figures["worker_start_to_first_message"] = round(time.monotonic() - worker_started, 1)
    workdir = Path(stack.outdir)
    upload_started = time.monotonic()
    figures["plate_and_geotag"] = checks.upload_course_photo(workdir)
    figures["course_photo_upload_to_hash"] = round(time.monotonic() - upload_started, 1)
    figures["face_match"] = checks.face_match()
    figures["readyz"] = checks.readyz()
    figures["logs_pod_lines"] = checks.log_lines()
    figures.update(checks.survives_worker_kill())
    return figures


def print_figures(figures: dict) -> None:
    print("\n== e2e figures ==")
    for name, value in figures.items():
        if name == "image_bytes":
            for image, size in value.items():
                print(f"image size {image}: {size / 1e6:.0f} MB")
        elif name == "build_seconds":
            for image, seconds in value.items():
                print(f"build {image}: {seconds:.1f} s")
        else:
            print(f"{name}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
