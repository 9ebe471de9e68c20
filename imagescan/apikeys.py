"""Scoped API keys for `AUTH=keys`, kept in Redis as hashes (never the key itself).

A key reads `isk_<id>_<secret>`: the id names the record (`keys.api_key`), the secret is 32
random bytes. Redis keeps the SHA-256 of the whole key; a random 256-bit secret needs no slow
password hash, and the comparison is constant-time (hmac.compare_digest), also when the id is
unknown, so the time taken does not tell whether an id exists.

Scopes: `upload` (send images), `read` (analyses, plates, originals, transforms, jobs, stats),
`faces` (face search and face boxes), `admin` (erasure, key management). A scope does not
imply another.

    python -m imagescan.apikeys create --scope read,faces [--label NAME]
    python -m imagescan.apikeys list
    python -m imagescan.apikeys revoke KEY_ID

Every key action is logged (who, what, when; never the key) on the `logs` exchange.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import logging
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from . import keys
from .redisclient import reply_text

SCOPES = ("upload", "read", "faces", "admin")
PREFIX = "isk"
_UNKNOWN_KEY_HASH = hashlib.sha256(b"no such key").hexdigest()
audit_log = logging.getLogger("imagescan.audit")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    scopes: frozenset[str]
    label: str = ""
    created_at: str = ""

    def describe(self) -> dict:
        return {"id": self.key_id, "scopes": sorted(self.scopes), "label": self.label,
                "created_at": self.created_at}


def parse_scopes(text: str) -> frozenset[str]:
    """`read,faces` -> {"read", "faces"}; ValueError naming any unknown scope."""
    scopes = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes are a comma-separated list of {', '.join(SCOPES)}; got {text!r}")
    return scopes


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _from_record(key_id: str, record: dict) -> ApiKey:
    record = {reply_text(k): reply_text(v) for k, v in record.items()}
    scopes = frozenset(s for s in record.get("scopes", "").split(",") if s)
    return ApiKey(key_id, scopes, record.get("label", ""), record.get("created_at", ""))


def create(redis, scopes: frozenset[str], label: str = "") -> tuple[str, ApiKey]:
    """A new key: (the key, shown once and never stored; its record)."""
    key_id = secrets.token_hex(6)
    token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    record = {"hash": _hash(token), "scopes": ",".join(sorted(scopes)), "label": label, "created_at": created}
    # Listed first, recorded second (two slots): a crash between leaves an id that lists
    # nothing (skipped), never a live key that `list` does not show.
    redis.sadd(keys.api_key_ids(), key_id)
    redis.hset(keys.api_key(key_id), mapping=record)
    return token, _from_record(key_id, record)


def lookup(redis, token: str) -> ApiKey | None:
    """The key's record when the token is a live key, else None (constant-time comparison)."""
    prefix, _, rest = token.partition("_")
    key_id = rest.partition("_")[0] if prefix == PREFIX else ""
    record = redis.hgetall(keys.api_key(key_id)) if key_id.isalnum() else {}
    stored = reply_text(record.get(b"hash", record.get("hash"))) if record else _UNKNOWN_KEY_HASH
    if not hmac.compare_digest(_hash(token).encode(), stored.encode()) or not record:
        return None
    return _from_record(key_id, record)


def list_keys(redis) -> list[ApiKey]:
    ids = sorted(reply_text(i) for i in redis.smembers(keys.api_key_ids()))
    pipe = redis.pipeline(transaction=False)
    for key_id in ids:
        pipe.hgetall(keys.api_key(key_id))
    return [_from_record(key_id, record) for key_id, record in zip(ids, pipe.execute()) if record]


def revoke(redis, key_id: str) -> bool:
    deleted = redis.delete(keys.api_key(key_id))  # the key stops working first, then is unlisted
    redis.srem(keys.api_key_ids(), key_id)
    return bool(deleted)


def log_key_action(action: str, who: str, key: ApiKey | None, key_id: str = "") -> None:
    fields = {"audit": action, "who": who, "key_id": key.key_id if key else key_id,
              "at": datetime.now(UTC).isoformat(timespec="seconds")}
    if key is not None:
        fields["scopes"] = sorted(key.scopes)
        fields["label"] = key.label
    audit_log.info("%s API key %s by %s", action, fields["key_id"], who, extra=fields)


class _PublishAtOnce(logging.Handler):
    """Publishes each record on `<host>.rest.info` before returning: a command exits right after
    its action, and the background log publisher could lose the record then."""

    def __init__(self, settings):
        super().__init__()
        self.settings = settings

    def emit(self, record: logging.LogRecord) -> None:
        import pika

        from . import topology
        from .broker import BROKER_ERRORS, connect
        from .logbus import record_to_json

        body = record_to_json(record, "rest", self.settings.hostname).encode()
        try:
            connection = connect(self.settings)
            try:
                channel = connection.channel()
                topology.declare_logs(channel)
                channel.basic_publish(topology.LOG_EXCHANGE,
                                      topology.log_routing_key(self.settings.hostname, "rest", "info"),
                                      body, pika.BasicProperties(content_type="application/json"))
            finally:
                connection.close()
        except BROKER_ERRORS as exc:
            print(f"warning: the action was done but could not be logged on the broker: {exc!r}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m imagescan.apikeys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create_cmd = commands.add_parser("create", help="make a key and print it (once)")
    create_cmd.add_argument("--scope", required=True, help=f"comma-separated: {','.join(SCOPES)}")
    create_cmd.add_argument("--label", default="", help="who or what the key is for")
    commands.add_parser("list", help="ids, scopes and labels of every key (never the keys)")
    commands.add_parser("revoke", help="delete a key by its id").add_argument("key_id")
    return parser


def main(argv=None) -> int:
    from . import config
    from .logbus import configure_logging
    from .redisclient import connect_redis

    args = _parser().parse_args(argv)
    settings = config.load("python -m imagescan.apikeys")
    configure_logging(settings.replace(log_level="WARNING"), "rest", to_broker=False)
    audit_log.setLevel(logging.INFO)  # key actions go to the logs exchange, other chatter does not
    audit_log.addHandler(_PublishAtOnce(settings))
    redis, who = connect_redis(settings), f"{getpass.getuser()}@{settings.hostname} (command line)"
    try:
        if args.command == "create":
            token, key = create(redis, parse_scopes(args.scope), args.label)
            log_key_action("created", who, key)
            print(token)
            print(f"id {key.key_id}, scopes {','.join(sorted(key.scopes))}: keep the key now, "
                  "it cannot be shown again", file=sys.stderr)
        elif args.command == "list":
            for key in list_keys(redis):
                print(f"{key.key_id}\t{','.join(sorted(key.scopes))}\t{key.created_at}\t{key.label}")
            log_key_action("listed", who, None, "*")
        elif not revoke(redis, args.key_id):
            print(f"no key with id {args.key_id!r}", file=sys.stderr)
            return 1
        else:
            log_key_action("revoked", who, None, args.key_id)
            print(f"revoked {args.key_id}", file=sys.stderr)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
