-- Claim up to `limit` ready write jobs for one batch, in queue order.
-- KEYS: queue, jobs...
-- ARGV: lease_ms, limit, functions, ids...
-- REPLY: claimed, others
-- jobs: for each id, in order, arq:job:<id>, arq:in-progress:<id>, arq:retry:<id>.
-- functions: the batch path's job names, each followed by a space (' put ops ').
-- A job is ready when it is in the queue with a start time that has come, and
-- no worker holds its claim. A ready job whose function is one of `functions`
-- is claimed as arq claims one (its claim set for lease_ms, its try counted as
-- arq counts it); claimed lists id, try, job for each. others lists the ready
-- jobs before the batch filled that are left to arq's own path (cron, durable tools,
-- anything that does not decode), untouched.
local lease_ms, limit, functions = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local claimed, others, taken = {}, {}, 0
for i = 4, #ARGV do
  -- A full batch stops the look: the jobs after it wait for the next (queue order).
  if taken >= limit then
    break
  end
  local id = ARGV[i]
  local base = (i - 4) * 3 + 1
  local job_key, claim_key, retry_key = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now and redis.call('EXISTS', claim_key) == 0 then
    local job = redis.call('GET', job_key)
    local ok, decoded = false, nil
    if job then
      ok, decoded = pcall(cjson.decode, job)
    end
    local f = ok and type(decoded) == 'table' and decoded.f
    if type(f) == 'string' and string.find(functions, ' ' .. f .. ' ', 1, true) then
      redis.call('SET', claim_key, '1', 'PX', lease_ms)
      local try = redis.call('INCRBY', retry_key, 1)
      if try == 1 then
        redis.call('EXPIRE', retry_key, 88400)
      end
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = try
      claimed[#claimed + 1] = job
      taken = taken + 1
    else
      others[#others + 1] = id
    end
  end
end
return {claimed, others}
