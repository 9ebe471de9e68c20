"""Settings for a RabbitMQ cluster (RABBITMQ_HOSTS) and Redis Sentinel (REDIS_SENTINELS), and
how the connections use them (no server needed: nothing connects until a command runs)."""

from __future__ import annotations

import pytest
import redis.sentinel

from imagescan import broker
from imagescan.config import ConfigError, Settings
from imagescan.store import connect_redis


def test_broker_nodes_and_sentinels_are_parsed_with_default_ports():
    settings = Settings.from_env({"RABBITMQ_HOSTS": "rabbit-a:5673, rabbit-b",
                                  "REDIS_SENTINELS": "s1:26380,s2", "REDIS_SENTINEL_MASTER": "main"})
    assert settings.rabbitmq_addresses == (("rabbit-a", 5673), ("rabbit-b", 5672))
    assert settings.redis_sentinels == (("s1", 26380), ("s2", 26379))
    assert settings.redis_sentinel_master == "main"


def test_without_a_node_list_the_single_host_is_used():
    settings = Settings.from_env({"RABBITMQ_HOST": "mq", "RABBITMQ_PORT": "5999"})
    assert settings.rabbitmq_addresses == (("mq", 5999),)
    assert settings.redis_sentinels == ()


@pytest.mark.parametrize("value", ["host:", ":5672", "host:port", "host:70000"])
def test_a_malformed_address_is_a_clear_error(value):
    with pytest.raises(ConfigError, match="RABBITMQ_HOSTS must be HOST:PORT"):
        Settings.from_env({"RABBITMQ_HOSTS": value})


def test_a_connection_tries_every_node_starting_anywhere(monkeypatch):
    tried = []
    monkeypatch.setattr(broker.pika, "BlockingConnection", lambda parameters: tried.append(parameters))
    settings = Settings(rabbitmq_hosts=(("a", 1), ("b", 2), ("c", 3)))
    for _ in range(40):
        broker.connect(settings)
    orders = {tuple((p.host, p.port) for p in parameters) for parameters in tried}
    # Every node in every attempt, in rotation order, and not always from the same one.
    assert orders <= {(("a", 1), ("b", 2), ("c", 3)), (("b", 2), ("c", 3), ("a", 1)), (("c", 3), ("a", 1), ("b", 2))}
    assert len(orders) > 1


def test_sentinels_select_a_master_client():
    client = connect_redis(Settings(redis_sentinels=(("127.0.0.1", 1),), redis_sentinel_master="main",
                                    redis_password="pw"))
    pool = client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.service_name == "main" and pool.is_master
    assert pool.connection_kwargs["password"] == "pw"
    plain = connect_redis(Settings(redis_host="db", redis_port=7000))
    assert plain.connection_pool.connection_kwargs["host"] == "db"
