-- reap_index: remove index entries of one owner whose record is gone.
-- KEYS: idx, exp, records...
-- ARGV: tasks...
-- REPLY: removed
-- The caller reads the task ids from the index a page at a time, so one call
-- stays short; records[i] is the record key of tasks[i].

local removed = 0
for i, task in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 2]) == 0 and redis.call('ZREM', KEYS[1], task) == 1 then
    redis.call('ZREM', KEYS[2], task)
    removed = removed + 1
  end
end
return removed
