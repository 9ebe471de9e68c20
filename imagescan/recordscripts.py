"""The Lua scripts that write an image's record (imagescan.store): each touches only keys of
the image's hash slot, so it runs whole on one Redis and on a cluster alike. The flags they set
(`unlisted`, `plates_pending`, `uncounted`) say which steps outside that slot are still to do
(imagescan.imagesteps).
"""

# KEYS: record, names, erasure journal (one slot)
# ARGV: sha256, md5, sha224, size, received_at, listing score (Unix seconds), name ("" for none)
# A new record carries `unlisted` until the steps outside its slot are done (imagesteps).
# Nothing is written while an erasure of these bytes is unfinished: that is finished first.
# Returns {created, status, unlisted, erasing}.
REGISTER = """
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, false, '', 1} end
local created = redis.call('HSETNX', KEYS[1], 'sha256', ARGV[1])
if created == 1 then
  redis.call('HSET', KEYS[1], 'md5', ARGV[2], 'sha224', ARGV[3], 'size', ARGV[4],
             'received_at', ARGV[5], 'status', 'queued', 'ts', ARGV[6], 'unlisted', '1')
end
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[6], ARGV[7])
end
return {created, redis.call('HGET', KEYS[1], 'status'), redis.call('HGET', KEYS[1], 'unlisted') or '', 0}
"""

# KEYS: record; ARGV: plates (comma-joined). Before the plates are filed under the image: the
# record names them first, so an erasure meanwhile finds and unfiles them.
# Returns -1 (no record), 0 (already done), 1 (go on).
BEGIN_SAVE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == false then return -1 end
if status == 'done' then return 0 end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'plates_pending', ARGV[1]) end
return 1
"""

# KEYS: record; ARGV: analysis json, format, width, height, analyzed_at, camera label
# Done, with its plates already filed; `uncounted` until the statistics step ran.
# Returns {-1 (no record), 0 (already done) or 1 (saved now), the record's incarnation}.
SAVE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == false then return {-1, ''} end
local incarnation = redis.call('HGET', KEYS[1], 'ts') or redis.call('HGET', KEYS[1], 'received_at') or ''
if status == 'done' then return {0, incarnation} end
redis.call('HSET', KEYS[1], 'status', 'done', 'analysis', ARGV[1], 'format', ARGV[2],
           'width', ARGV[3], 'height', ARGV[4], 'analyzed_at', ARGV[5], 'camera', ARGV[6],
           'uncounted', '1')
redis.call('HDEL', KEYS[1], 'error', 'plates_pending')
return {1, incarnation}
"""

# KEYS: record; ARGV: new status, error ("" for none), at
# Moves queued/processing/failed forward; a finished analysis is never overwritten.
# Returns {status before, whether steps of the upload are still to do}.
SET_STATUS = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == false then return {false, ''} end
local unlisted = redis.call('HGET', KEYS[1], 'unlisted') or ''
if status == 'done' then return {status, unlisted} end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated_at', ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[2]) end
return {status, unlisted}
"""
