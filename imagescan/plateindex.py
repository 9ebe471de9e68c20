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
about 20 bytes per entry, where one key per variant would cost ~150 bytes.
"""

from __future__ import annotations

from . import keys
from .platetext import LOOKALIKE_PAIRS, lookalike_key, normalize_plate, rank_matches

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

# ARGV: bucket key prefix, number of buckets, the probe forms comma-joined. Returns every
# plate listed under them, comma-joined. The few hundred bucket names are made here rather
# than sent: packing them as arguments cost the REST more CPU than the whole lookup.
# (The index keys are therefore not declared in KEYS: fine on one Redis, not on a cluster.)
_FIND = """
local found, buckets = {}, tonumber(ARGV[2])
for form in string.gmatch(ARGV[3], '[^,]+') do
  local h = 0
  for i = 1, #form do h = (h * 31 + string.byte(form, i)) % buckets end
  local listed = redis.call('HGET', ARGV[1] .. h, form)
  if listed then found[#found + 1] = listed end
end
return table.concat(found, ',')
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


def bucket_of(form: str) -> str:
    """The hash holding a form; the same arithmetic as the lookup script's."""
    number = 0
    for byte in _field(form).encode():
        number = (number * 31 + byte) % BUCKETS
    return keys.plate_fuzzy_bucket(number)


class PlateIndex:
    def __init__(self, client):
        self.redis = client
        self._add = client.register_script(_ADD)
        self._find = client.register_script(_FIND)

    def add(self, plates, client=None) -> None:
        """File normalised plates in the index; idempotent. `client`: a pipeline to queue on."""
        for plate in plates:
            forms = sorted(index_forms(plate))
            if forms and "," not in plate:
                self._add(keys=[bucket_of(f) for f in forms], args=[plate, *map(_field, forms)], client=client)

    def near(self, query: str, fuzziness: int) -> list[tuple[str, int]]:
        """(plate, distance) of the indexed plates within `fuzziness` edits, nearest first."""
        if not normalize_plate(query):
            return []
        forms = ",".join(_field(form) for form in probe_forms(query, fuzziness))
        listed = self._find(args=[keys.plate_fuzzy_bucket(""), BUCKETS, forms])
        listed = listed.decode() if isinstance(listed, bytes) else listed
        candidates = set(listed.split(",")) - {""}
        return rank_matches(query, candidates, fuzziness)
