"""Fuzzy plate search in bounded time: an index of lookalike-folded deletion variants.

`?fuzzy=N` accepts plates at most N edits from the query, where a lookalike swap (O/0,
I/1 ...) and a missing or extra character cost 1 and any other substitution 2 (see
:func:`imagescan.platetext.lookalike_distance`). Folding lookalikes onto one character
makes a swap free, and a substitution costing 2 is a deletion plus an insertion, so two
plates within N edits have folded forms within N deletions-or-insertions of each other:
deleting at most N characters in total from the two sides gives the same string.

The index therefore keeps, for every plate, its folded form and each folded form with one
character deleted. A query looks up its folded form with up to N characters deleted
(covering every split where the plate side lost at most one) and, for N = 2, its folded
form with one character inserted (the plate side lost two). Every candidate found is then
checked with the exact distance, so the index only has to never miss a plate; it does not
decide. A query reads a few hundred index entries whatever the number of plates.

Entries live in hash buckets (`keys.plate_fuzzy_bucket`): field = variant, value = the
plates having it, comma-separated. Small hashes are stored compactly by Redis (listpack),
about 20 bytes per entry, where one key per variant would cost ~150 bytes. Bucket `b` is in
shard `b % SHARDS` (a hash tag): a plate is filed with one script per shard its forms fall in,
and a query reads every shard with one script on one Redis, one per shard on a cluster (each
script then touches one slot). Filing is idempotent, so a crash between shards is mended by
the redelivery that files the plate again.

The plate's own set of images (`keys.plate_images`) and the piece of the known plates that
lists it share the plate's slot, so `file_image`/`unfile_image` keep both in one step.
"""

from __future__ import annotations

from collections import defaultdict

from . import keys
from .platetext import LOOKALIKE_PAIRS, lookalike_key, normalize_plate, rank_matches
from .redisclient import is_cluster, run_script

BUCKETS = 1 << 17  # ~60 variants per bucket at 10^6 plates: well inside listpack limits
# Folded alphabet: a lookalike digit never survives folding.
_FOLDED_ALPHABET = "".join(sorted(set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                                  - {digit for _letter, digit in LOOKALIKE_PAIRS}))

# KEYS: one bucket per entry; ARGV: plate, then the variant of each KEYS entry, in order.
# Adds the plate to each variant's list unless it is there already (a redelivery).
_ADD = """
local tagged = ',' .. ARGV[1] .. ','
for i = 1, #KEYS do
  local listed = redis.call('HGET', KEYS[i], ARGV[i + 1])
  if not listed then
    redis.call('HSET', KEYS[i], ARGV[i + 1], ARGV[1])
  elseif not string.find(',' .. listed .. ',', tagged, 1, true) then
    redis.call('HSET', KEYS[i], ARGV[i + 1], listed .. ',' .. ARGV[1])
  end
end
return #KEYS
"""

# ARGV: the bucket key prefix of each shard (comma-joined, in shard order), number of buckets,
# the shard to read ("": every shard), the probe forms comma-joined. Returns every plate listed
# under them, comma-joined. The few hundred bucket names are made here rather than sent:
# packing them as arguments cost the REST more CPU than the whole lookup. On a cluster KEYS[1]
# is a bucket of the shard read, so the call goes to the node holding it: the buckets read are
# all in that slot.
_FIND = """
local prefixes = {}
for prefix in string.gmatch(ARGV[1], '[^,]+') do prefixes[#prefixes + 1] = prefix end
local found, shards, buckets, only = {}, #prefixes, tonumber(ARGV[2]), tonumber(ARGV[3])
for form in string.gmatch(ARGV[4], '[^,]+') do
  local h = 0
  for i = 1, #form do h = (h * 31 + string.byte(form, i)) % buckets end
  if only == nil or h % shards == only then
    local listed = redis.call('HGET', prefixes[h % shards + 1] .. h, form)
    if listed then found[#found + 1] = listed end
  end
end
return table.concat(found, ',')
"""

# KEYS: the plate's image set, the known-plates piece listing it (one slot); ARGV: sha256, plate
_FILE_IMAGE = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

# KEYS, ARGV: as _FILE_IMAGE. A plate no image shows any more leaves the known plates.
_UNFILE_IMAGE = """
redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return 1
"""


def _deletions(text: str) -> set[str]:
    return {text[:i] + text[i + 1:] for i in range(len(text))}


def index_forms(plate: str) -> set[str]:
    """What a plate is filed under: its folded form and that form with one character deleted."""
    folded = lookalike_key(plate)
    # A one-character plate is filed under "" too: any one-character query is 2 edits away.
    return {folded} | _deletions(folded)


def probe_forms(query: str, fuzziness: int) -> set[str]:
    """What a query looks up to find every plate within `fuzziness` edits (and some more)."""
    folded = lookalike_key(query)
    forms, frontier = {folded}, {folded}
    for _ in range(fuzziness):
        frontier = {shorter for text in frontier for shorter in _deletions(text)}
        forms |= frontier
    if fuzziness >= 2:
        forms |= {folded[:i] + char + folded[i:]
                  for i in range(len(folded) + 1) for char in _FOLDED_ALPHABET}
    return forms


EMPTY_FORM = "-"  # stands for "" (a one-character plate with its character deleted)


def _field(form: str) -> str:
    return form or EMPTY_FORM


def bucket_of(form: str) -> int:
    """The number of the hash holding a form; the same arithmetic as the lookup script's."""
    number = 0
    for byte in _field(form).encode():
        number = (number * 31 + byte) % BUCKETS
    return number


def file_image(client, sha256: str, plate: str) -> None:
    """List the image under its plate, and the plate among the known plates (idempotent)."""
    run_script(client, _FILE_IMAGE, [keys.plate_images(plate), keys.known_plates_of(plate)], [sha256, plate])


def unfile_image(client, sha256: str, plate: str) -> None:
    """Take the image from its plate's list, and a plate no image shows from the known plates."""
    run_script(client, _UNFILE_IMAGE, [keys.plate_images(plate), keys.known_plates_of(plate)], [sha256, plate])


class PlateIndex:
    def __init__(self, client):
        self.redis = client
        self._find = client.register_script(_FIND)
        self._prefixes = ",".join(keys.plate_fuzzy_prefix(shard) for shard in range(keys.SHARDS))

    def add(self, plates, client=None) -> None:
        """File normalised plates in the index; idempotent. `client`: a pipeline to queue on.
        On a cluster, one call per piece the plate's forms fall in (queued on one pipeline)."""
        if client is None:
            with self.redis.pipeline(transaction=False) as pipe:
                self.add(plates, client=pipe)
                pipe.execute()
            return
        split = is_cluster(client)
        for plate in plates:
            forms = sorted(index_forms(plate))
            if not forms or "," in plate:
                continue
            groups = defaultdict(list)
            for form in forms:
                groups[bucket_of(form) % keys.SHARDS if split else 0].append(form)
            for group in groups.values():
                run_script(client, _ADD, [keys.plate_fuzzy_bucket(bucket_of(f)) for f in group],
                           [plate, *map(_field, group)])

    def near(self, query: str, fuzziness: int) -> list[tuple[str, int]]:
        """(plate, distance) of the indexed plates within `fuzziness` edits, nearest first."""
        if not normalize_plate(query):
            return []
        forms = ",".join(_field(form) for form in probe_forms(query, fuzziness))
        if is_cluster(self.redis):
            with self.redis.pipeline(transaction=False) as pipe:
                for shard in range(keys.SHARDS):
                    run_script(pipe, _FIND, [keys.plate_fuzzy_bucket(shard)], [self._prefixes, BUCKETS, shard, forms])
                replies = pipe.execute()
        else:
            replies = [self._find(args=[self._prefixes, BUCKETS, "", forms])]
        listed = ",".join(r.decode() if isinstance(r, bytes) else r for r in replies)
        candidates = set(listed.split(",")) - {""}
        return rank_matches(query, candidates, fuzziness)
