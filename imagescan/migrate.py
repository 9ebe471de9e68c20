"""One-off upgrade of a Redis written by an earlier release: keys without hash tags and
shards, a fuzzy plate index without its pair forms.

    python -m imagescan.migrate [--dry-run]

Run it once, with every service stopped, against the Redis the services used (REDIS_HOST...:
one Redis or the Sentinels' master). It renames every key to its new name (RENAME keeps the
value and the TTL), splits the two big sets (`plates`, `images:recent`) into their pieces, files
the faces of the one face index into the face partitions (new face ids, written into each
image's face list), and drops the caches and tombstones (thumbnails, transforms, day-old
tombstones: made again as needed). Keys already in the new layout are left alone, so a second run changes nothing.
Last, it files every known plate's pair forms in the fuzzy index (imagescan.plateindex) unless
the index says it has them; on a Redis Cluster, this is the only step it takes. That step
alone may run with the services up, once no worker of an earlier release is left.
Moving the data to a Redis Cluster afterwards is Redis's own tool:
`redis-cli --cluster import CLUSTER_HOST:PORT --cluster-from OLD_HOST:PORT --cluster-copy`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict

from . import keys, recent
from .facematrix import encoding_from_bytes
from .facestore import FaceStore
from .store import ImageStore

_RENAMES = [(re.compile(pattern), rename) for pattern, rename in keys.legacy_renames()]
_CACHES = [re.compile(pattern) for pattern in keys.LEGACY_CACHES]
BATCH = 1000


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def new_name(old: str) -> str | None:
    """The key's name in the current layout; None when it keeps its name (or is no old key)."""
    for pattern, rename in _RENAMES:
        matched = pattern.match(old)
        if matched:
            return rename(*matched.groups())
    return None


def _split_sets(client, dry_run: bool, counts: Counter) -> None:
    old_plates, old_recent = keys.LEGACY_SPLIT_SETS
    for plate in client.sscan_iter(old_plates, count=BATCH):
        counts["known plates"] += 1
        if not dry_run:
            client.sadd(keys.known_plates_of(_text(plate)), plate)
    for sha256, score in client.zscan_iter(old_recent, count=BATCH):
        counts["listed images"] += 1
        if not dry_run:
            recent.add(client, _text(sha256), score)
    if not dry_run:
        client.delete(old_plates, old_recent)


def _move_faces(client, dry_run: bool, counts: Counter) -> None:
    """File each image's faces into its partition (FaceStore.add: a repeat returns the same
    ids), then, in one transaction, give its face list the new ids and drop its old entries:
    a run cut short anywhere is finished by the next one. Faces of images no longer stored
    are dropped, never filed again."""
    encodings_key, owners_key, *counters = keys.LEGACY_FACE_KEYS
    by_owner: dict[str, list[int]] = defaultdict(list)
    for face, owner in client.hscan_iter(owners_key, count=BATCH):
        by_owner[_text(owner)].append(int(face))
    faces = FaceStore(client)
    for owner, old_ids in by_owner.items():
        counts["faces filed in partitions"] += len(old_ids)
        if dry_run:
            continue
        old_ids.sort()
        stored = [(face, raw) for face, raw in zip(old_ids, client.hmget(encodings_key, old_ids)) if raw]
        listed = json.loads(client.get(keys.image_faces(owner)) or "[]")
        if stored and client.exists(keys.image(owner)):
            new_ids = faces.add(owner, [encoding_from_bytes(raw) for _, raw in stored])
            renumbered = {old: new for (old, _), new in zip(stored, new_ids)}
            listed = [{**face, "id": renumbered.get(face["id"], face["id"])} for face in listed]
        with client.pipeline(transaction=True) as pipe:
            if listed:
                pipe.set(keys.image_faces(owner), json.dumps(listed, separators=(",", ":")))
            pipe.hdel(owners_key, *old_ids)
            pipe.hdel(encodings_key, *old_ids)
            pipe.execute()
    if not dry_run and not client.hlen(owners_key):
        client.delete(encodings_key, *counters)


def migrate(client, dry_run: bool = False) -> Counter:
    """Rename, split and drop (see the module's docstring); what was done, counted by kind."""
    counts: Counter = Counter()
    _split_sets(client, dry_run, counts)
    for raw in client.scan_iter(count=BATCH):
        old = _text(raw)
        if "{" in old:
            continue  # already in the new layout
        if any(pattern.match(old) for pattern in _CACHES):
            counts["caches dropped"] += 1
            if not dry_run:
                client.delete(old)
            continue
        target = new_name(old)
        if target is not None and target != old:
            counts["renamed"] += 1
            if not dry_run:
                client.rename(old, target)
    _move_faces(client, dry_run, counts)  # after the renames: the face lists have their new names
    file_plate_pairs(client, dry_run, counts)  # after the split: it reads the known plates' pieces
    return counts


def file_plate_pairs(client, dry_run: bool, counts: Counter) -> None:
    """File the pair forms of every known plate, then say the index has them: until then a
    fuzzy search probes ~240 more forms to find the same plates (imagescan.plateindex)."""
    store = ImageStore(client)
    if store.plate_index.pairs_filed():
        return
    if dry_run:  # the known plates may still be in the one set a dry run does not split
        old_plates, _ = keys.LEGACY_SPLIT_SETS
        pieces = [keys.known_plates(shard) for shard in range(keys.SHARDS)]
        counts["plates to file in the fuzzy index"] = sum(client.scard(name) for name in (old_plates, *pieces))
    else:
        counts["plates filed in the fuzzy index"] = store.index_known_plates()


def main(argv=None) -> int:
    from . import config
    from .redisclient import connect_redis, is_cluster

    parser = argparse.ArgumentParser(prog="python -m imagescan.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="count what would change, change nothing")
    args = parser.parse_args(argv)
    client = connect_redis(config.load("python -m imagescan.migrate"))
    counts: Counter = Counter()
    if is_cluster(client):  # a cluster was never written with the old names: only its index
        file_plate_pairs(client, args.dry_run, counts)
    else:
        counts = migrate(client, args.dry_run)
    for kind, count in sorted(counts.items()):
        print(f"{kind}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
