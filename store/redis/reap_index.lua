-- reap_index: remove index entries of one owner whose record is gone.
-- KEYS: index, expiry
-- ARGV: record_prefix, start, count
-- Reply: {removed, next_start}: next_start is -1 when the index is done.
-- Entries are checked by rank, `count` at a time, so one call stays short.

local start, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local tasks = redis.call('ZRANGE', KEYS[1], start, start + count - 1)
local removed = 0
for _, task in ipairs(tasks) do
  if redis.call('EXISTS', ARGV[1] .. task) == 0 then
    redis.call('ZREM', KEYS[1], task)
    redis.call('ZREM', KEYS[2], task)
    removed = removed + 1
  end
end
local next_start = -1
if #tasks == count then next_start = start + count - removed end
return {removed, next_start}
