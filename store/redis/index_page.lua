-- list: one page of an owner's live records in creation order.
-- KEYS: index, expiry
-- ARGV: record_prefix, descending, after_score, after_task, limit
-- Reply: {more, task, score, version, data, task, score, version, data, ...}
-- Starts after (after_score, after_task) when after_score is not empty; ties
-- in score are ordered by the task id's bytes, as sorted sets order them.
-- Expired records are skipped (the sweep removes them); index entries whose
-- record is gone although it has not expired are orphans and are removed.

local now = now_ms()
local descending = ARGV[2] == '1'
local after_score = tonumber(ARGV[3])
local after_task = ARGV[4]
local limit = tonumber(ARGV[5])
local chunk = limit + 1
local reply = {0}
local found, offset = 0, 0

local function past_cursor(task, score)
  if after_score == nil or score ~= after_score then return true end
  if descending then return bytes_before(task, after_task) end
  return bytes_before(after_task, task)
end

while true do
  local batch
  if descending then
    batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[3] ~= '' and ARGV[3] or '+inf', '-inf',
      'WITHSCORES', 'LIMIT', offset, chunk)
  else
    batch = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3] ~= '' and ARGV[3] or '-inf', '+inf',
      'WITHSCORES', 'LIMIT', offset, chunk)
  end
  local pruned = 0
  for i = 1, #batch, 2 do
    local task, score = batch[i], tonumber(batch[i + 1])
    if past_cursor(task, score) then
      local f = redis.call('HMGET', ARGV[1] .. task, 'v', 'd', 'e')
      if not f[1] then
        local expiry = tonumber(redis.call('ZSCORE', KEYS[2], task))
        if not expiry or expiry > now then
          redis.call('ZREM', KEYS[1], task)
          redis.call('ZREM', KEYS[2], task)
          pruned = pruned + 1
        end
      elseif not (f[3] and tonumber(f[3]) <= now) then
        if found == limit then
          reply[1] = 1
          return reply
        end
        found = found + 1
        reply[#reply + 1] = task
        reply[#reply + 1] = batch[i + 1]
        reply[#reply + 1] = f[1]
        reply[#reply + 1] = f[2]
      end
    end
  end
  if #batch < 2 * chunk then
    return reply
  end
  offset = offset + chunk - pruned
end
