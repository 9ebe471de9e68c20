"""Looking for what is left of an image: every Redis key and value, every blob file."""

from __future__ import annotations

from pathlib import Path


def _values(redis, key: bytes, kind: str) -> list[bytes]:
    if kind == "string":
        return [redis.get(key) or b""]
    if kind == "hash":
        return [part for pair in redis.hgetall(key).items() for part in pair]
    if kind == "set":
        return list(redis.smembers(key))
    if kind == "zset":
        return list(redis.zrange(key, 0, -1))
    if kind == "list":
        return list(redis.lrange(key, 0, -1))
    return [repr(redis.execute_command("DUMP", key)).encode()]  # any other type: its serialised form


def redis_traces(redis, needles: list[str | bytes]) -> list[str]:
    """Every key whose name or content holds one of the needles (digests, image bytes)."""
    wanted = [n.encode() if isinstance(n, str) else n for n in needles if n]
    found = []
    for key in redis.scan_iter(count=1000):
        if any(needle in key for needle in wanted):
            found.append(f"key {key[:120]!r}")
            continue
        kind = redis.type(key).decode()
        if any(needle in value for value in _values(redis, key, kind) for needle in wanted):
            found.append(f"{kind} {key[:120]!r} holds it")
    return found


def file_traces(root: Path, needles: list[bytes]) -> list[str]:
    """Files under root holding any of the needles (whole images or digests)."""
    return [str(path) for path in root.rglob("*") if path.is_file()
            and any(needle in path.read_bytes() or needle.decode("latin-1") in path.name for needle in needles)]
