import pytest

from imagescan import topology
from imagescan.broker import decode_work, encode_work
from imagescan.config import ConfigError, Settings
from imagescan.digests import Digests, digest_kind


def test_defaults_match_the_readme():
    settings = Settings.from_env({})
    assert settings.port == 5000
    assert settings.max_upload_bytes == 100 * 1024 * 1024
    assert settings.face_tolerance == 0.49
    assert settings.api_keys == ()
    assert settings.allow_private_urls is False


def test_environment_overrides_and_lists():
    settings = Settings.from_env({"PORT": "8080", "API_KEY": "a, b ,,c", "ALLOW_PRIVATE_URLS": "yes",
                                  "REDIS_HOST": "redis", "FACE_TOLERANCE": "0.5"})
    assert (settings.port, settings.redis_host, settings.face_tolerance) == (8080, "redis", 0.5)
    assert settings.api_keys == ("a", "b", "c")
    assert settings.allow_private_urls is True


@pytest.mark.parametrize(
    "env",
    [{"PORT": "http"}, {"PORT": "0"}, {"ALLOW_PRIVATE_URLS": "maybe"}, {"BLOB_STORE": "s3"},
     {"BLOB_STORE": "dir"}, {"FACE_TOLERANCE": "7"}, {"FACE_SEARCH": "tier"}, {"FACE_SEARCH": "faiss"},
     {"FACE_TIER_SHARD": "2", "FACE_TIER_SHARDS": "2"}, {"FACE_TIER_SHARDS": "65"},
     {"FACE_ENCODING_SHIFT": "16"}, {"FACE_ENCODING_SHIFT": "-1"}],
)
def test_bad_settings_fail_with_the_variable_named(env):
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert any(name in str(error.value) for name in env)


def test_the_face_settings_reach_the_dlib_engine_only():
    from imagescan.analyzers.kinds.faces import engine_options

    settings = Settings.from_env({"FACE_ENCODING_SHIFT": "0", "FACE_MAX_SIDE": "900"})
    assert engine_options(settings) == {"max_side": 900, "shift": 0}
    assert engine_options(Settings.from_env({})) == {"max_side": 1280, "shift": 3}
    assert engine_options(Settings.from_env({"FACE_ENGINE": "none"})) == {}


def test_secrets_stay_out_of_repr():
    text = repr(Settings(redis_password="s3cret", api_keys=("k3y",)))
    assert "s3cret" not in text and "k3y" not in text


def test_log_routing_keys():
    assert topology.log_routing_key("node-1", "rest", "info") == "node-1.rest.info"
    assert topology.log_routing_key("pod.cluster.local", "worker", "debug") == "pod-cluster-local.worker.debug"
    with pytest.raises(ValueError):
        topology.log_routing_key("h", "rest", "warning")


def test_work_messages_round_trip_and_strangers_are_refused():
    body = encode_work(topology.ANALYZE, sha256="ab" * 32, request_id="r1")
    assert decode_work(body) == {"kind": "analyze", "sha256": "ab" * 32, "request_id": "r1"}
    for stranger in (b"[]", b'{"kind": "explode"}', b"\xff"):
        with pytest.raises(ValueError):
            decode_work(stranger)


def test_digest_kinds():
    digests = Digests.of(b"x")
    assert digest_kind(digests.md5) == "md5"
    assert digest_kind(digests.sha224.upper()) == "sha224"
    assert digest_kind(digests.sha256) == "sha256"
    assert digest_kind("xyz") is None and digest_kind("ab" * 20) is None


def test_s3_blob_store_settings_come_from_the_environment():
    settings = Settings.from_env({"BLOB_STORE": "s3", "S3_BUCKET": "photos", "S3_PREFIX": "a/b/",
                                  "S3_ENDPOINT_URL": "http://127.0.0.1:9000", "S3_REGION": "eu-west-1"})
    assert (settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url, settings.s3_region) == (
        "photos", "a/b/", "http://127.0.0.1:9000", "eu-west-1")
    with pytest.raises(ConfigError, match="S3_BUCKET"):
        Settings.from_env({"BLOB_STORE": "s3"})
    with pytest.raises(ConfigError, match="BLOB_STORE"):
        Settings.from_env({"BLOB_STORE": "gcs"})
def test_every_setting_is_in_the_readme_configuration_table():
    from pathlib import Path

    from imagescan.config import SETTINGS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [setting.env for setting in SETTINGS if f"`{setting.env}`" not in readme]
    assert not missing, f"settings missing from the README: {missing}"


def test_gunicorn_settings_are_declared_and_checked():
    settings = Settings.from_env({"GUNICORN_WORKERS": "3", "GUNICORN_THREADS": "4"})
    assert (settings.gunicorn_workers, settings.gunicorn_threads) == (3, 4)
    assert (Settings.from_env({}).gunicorn_workers, Settings.from_env({}).gunicorn_threads) == (2, 8)
    with pytest.raises(ConfigError, match="GUNICORN_THREADS"):
        Settings.from_env({"GUNICORN_THREADS": "0"})


def test_a_bad_setting_stops_a_service_with_one_line_naming_it(monkeypatch):
    from imagescan import config

    monkeypatch.setenv("MAX_ATTEMPTS", "many")
    with pytest.raises(SystemExit) as stop:
        config.load("worker")
    assert str(stop.value) == "worker: configuration error: MAX_ATTEMPTS must be an integer, got 'many'"
