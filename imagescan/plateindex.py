"""Fuzzy plate search in bounded time: an index of lookalike-folded deletion variants.

`?fuzzy=N` accepts plates at most N edits from the query, where a lookalike swap (O/0,
I/1 ...) and a missing or extra character cost 1 and any other substitution 2 (see
:func:`imagescan.platetext.lookalike_distance`). Folding lookalikes onto one character
makes a swap free, and a substitution costing 2 is a deletion plus an insertion, so two
plates within N edits have folded forms within N deletions-or-insertions of each other:
deleting at most N characters in total from the two sides gives the same string.

The index keeps, for every plate, its folded form and each folded form with one character
deleted ("single" forms), and, apart, each folded form with two characters deleted ("pair"
forms). A query looks up its folded form with up to N characters deleted among the single
forms (every split where the plate side lost at most one), and, for N = 2, its folded form
itself among the pair forms (the plate side lost two). Every candidate found is then checked
with the exact distance, so the index only has to never miss a plate; it does not decide. A
query reads at most 1 + L + L(L-1)/2 + 1 entries for an L-character query (30 for seven),
whatever the number of plates. The pair forms are apart so that only the query's own form
meets them: a query with two characters deleted against a plate with two deleted would be
four edits, and at a million plates such chance meetings would outnumber the real ones.

Entries live in hash buckets (`keys.plate_fuzzy_bucket`, `keys.plate_pair_bucket`): field =
variant, value = the plates having it, comma-separated. Small hashes are stored compactly by
Redis (listpack), about 20 bytes per entry, where one key per variant would cost ~150 bytes.
Bucket `b` is in shard `b % SHARDS` (a hash tag; a shard's single and pair buckets share it):
a plate is filed with one script per shard its forms fall in, and a query reads every shard
with one script on one Redis, one per shard on a cluster (each script then touches one slot).
Filing is idempotent, so a crash between shards is mended by the redelivery that files the
plate again.

An index written before the pair forms existed lacks them: until `keys.plate_pairs_filed`
says every plate has its pair forms (set when the first plate is filed into an empty index,
or by `python -m imagescan.migrate`, which files them), a query looks up its folded form with
one character inserted among the single forms instead (the plate side lost two): about 240
more entries and one more read of the marker per query, the same plates found.

The plate's own set of images (`keys.plate_images`) and the piece of the known plates that
lists it share the plate's slot, so `file_image`/`unfile_image` keep both in one step.
"""

from __future__ import annotations

import time
from collections import defaultdict

from . import keys
from .platetext import LOOKALIKE_PAIRS, lookalike_key, normalize_plate, rank_matches
from .redisclient import is_cluster, run_script

BUCKETS = 1 << 17  # ~60 single forms per bucket at 10^6 plates: well inside listpack limits
PAIR_BUCKETS = 1 << 18  # 21 pair forms per seven-character plate: ~80 per bucket at 10^6
# Folded alphabet: a lookalike digit never survives folding.
_FOLDED_ALPHABET = "".join(sorted(set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                                  - {digit for _letter, digit in LOOKALIKE_PAIRS}))
SINGLE, PAIR = "single", "pair"  # the two kinds of forms, each filed in buckets of its own
_BUCKETS = {SINGLE: BUCKETS, PAIR: PAIR_BUCKETS}
_BUCKET_KEY = {SINGLE: keys.plate_fuzzy_bucket, PAIR: keys.plate_pair_bucket}
_BUCKET_PREFIX = {SINGLE: keys.plate_fuzzy_prefix, PAIR: keys.plate_pair_prefix}
RECHECK_SECONDS = 60  # how often an index without its pair forms is looked at again

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

# ARGV: the shard to read ("": every shard), then for each kind of form three arguments: the
# bucket key prefix of each shard (comma-joined, in shard order), the number of buckets, the
# probe forms comma-joined. Returns every plate listed under them, comma-joined. The bucket
# names are made here rather than sent: packing them as arguments cost the REST more CPU than
# the whole lookup. On a cluster KEYS[1] is a bucket of the shard read, so the call goes to
# the node holding it: the buckets read are all in that slot.
_FIND = """
local only, found = tonumber(ARGV[1]), {}
for kind = 2, #ARGV, 3 do
  local prefixes = {}
  for prefix in string.gmatch(ARGV[kind], '[^,]+') do prefixes[#prefixes + 1] = prefix end
  local shards, buckets = #prefixes, tonumber(ARGV[kind + 1])
  for form in string.gmatch(ARGV[kind + 2], '[^,]+') do
    local h = 0
    for i = 1, #form do h = (h * 31 + string.byte(form, i)) % buckets end
    if only == nil or h % shards == only then
      local listed = redis.call('HGET', prefixes[h % shards + 1] .. h, form)
      if listed then found[#found + 1] = listed end
    end
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


def _by_deletions(text: str, most: int) -> list[set[str]]:
    """`text` with 0, 1, ..., `most` characters deleted: one set per number deleted."""
    levels = [{text}]
    for _ in range(most):
        levels.append({shorter for longer in levels[-1] for shorter in _deletions(longer)})
    return levels


def index_forms(plate: str) -> dict[str, set[str]]:
    """What a plate is filed under, by kind: its folded form and that form with one character
    deleted (single), the folded form with two deleted (pair)."""
    # A one-character plate is filed under "" too: any one-character query is 2 edits away.
    whole, once, twice = _by_deletions(lookalike_key(plate), 2)
    return {SINGLE: whole | once, PAIR: twice}


def probe_forms(query: str, fuzziness: int, pairs_filed: bool = True) -> dict[str, set[str]]:
    """What a query looks up, by kind, to find every plate within `fuzziness` edits (and some
    more). `pairs_filed`: whether every plate of the index has its pair forms."""
    folded = lookalike_key(query)
    forms = set().union(*_by_deletions(folded, fuzziness))
    if fuzziness < 2:
        return {SINGLE: forms}
    if pairs_filed:
        return {SINGLE: forms, PAIR: {folded}}
    inserted = {folded[:i] + char + folded[i:] for i in range(len(folded) + 1) for char in _FOLDED_ALPHABET}
    return {SINGLE: forms | inserted}


EMPTY_FORM = "-"  # stands for "" (a one-character plate with its character deleted)


def _field(form: str) -> str:
    return form or EMPTY_FORM


def bucket_of(form: str, kind: str = SINGLE) -> int:
    """The number of the hash holding a form; the same arithmetic as the lookup script's."""
    number, buckets = 0, _BUCKETS[kind]
    for byte in _field(form).encode():
        number = (number * 31 + byte) % buckets
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
        self._prefixes = {kind: ",".join(prefix(shard) for shard in range(keys.SHARDS))
                          for kind, prefix in _BUCKET_PREFIX.items()}
        self._pairs_filed = False  # once true, true for good: the marker is never removed
        self._pairs_checked = -RECHECK_SECONDS

    def add(self, plates, client=None) -> None:
        """File normalised plates in the index; idempotent. `client`: a pipeline to queue on.
        On a cluster, one call per piece the plate's forms fall in (queued on one pipeline)."""
        if client is None:
            with self.redis.pipeline(transaction=False) as pipe:
                self.add(plates, client=pipe)
                pipe.execute()
            return
        self._claim_if_empty()
        split = is_cluster(client)
        for plate in plates:
            if not plate or "," in plate:
                continue
            groups = defaultdict(lambda: ([], []))
            for kind, forms in index_forms(plate).items():
                for form in sorted(forms):
                    bucket = bucket_of(form, kind)
                    names, fields = groups[bucket % keys.SHARDS if split else 0]
                    names.append(_BUCKET_KEY[kind](bucket))
                    fields.append(_field(form))
            for names, fields in groups.values():
                run_script(client, _ADD, names, [plate, *fields])

    def near(self, query: str, fuzziness: int) -> list[tuple[str, int]]:
        """(plate, distance) of the indexed plates within `fuzziness` edits, nearest first."""
        if not normalize_plate(query):
            return []
        probes = probe_forms(query, fuzziness, fuzziness < 2 or self.pairs_filed())  # pairs: for 2 only
        args = [arg for kind, forms in probes.items()
                for arg in (self._prefixes[kind], _BUCKETS[kind], ",".join(map(_field, forms)))]
        if is_cluster(self.redis):
            with self.redis.pipeline(transaction=False) as pipe:
                for shard in range(keys.SHARDS):
                    run_script(pipe, _FIND, [keys.plate_fuzzy_bucket(shard)], [shard, *args])
                replies = pipe.execute()
        else:
            replies = [self._find(args=["", *args])]
        listed = ",".join(r.decode() if isinstance(r, bytes) else r for r in replies)
        candidates = set(listed.split(",")) - {""}
        return rank_matches(query, candidates, fuzziness)

    def pairs_filed(self) -> bool:
        """Whether every plate of the index has its pair forms (see the module's docstring)."""
        if not self._pairs_filed:
            self._pairs_filed = bool(self.redis.exists(keys.plate_pairs_filed()))
        return self._pairs_filed

    def mark_pairs_filed(self) -> None:
        self.redis.set(keys.plate_pairs_filed(), "1")
        self._pairs_filed = True

    def _claim_if_empty(self) -> None:
        """An index with no plate yet will only hold plates filed with their pair forms: say so
        before the first is filed. Looked at once a minute while an older index lacks them."""
        now = time.monotonic()
        if self._pairs_filed or now - self._pairs_checked < RECHECK_SECONDS:
            return
        self._pairs_checked = now
        if self.pairs_filed():
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(keys.SHARDS):
                pipe.exists(keys.known_plates(shard))
            known = sum(pipe.execute())
        if not known:
            self.mark_pairs_filed()
