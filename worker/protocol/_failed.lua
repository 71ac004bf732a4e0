-- Shared by the scripts that keep failed jobs (prepended when they are loaded).

-- Keep one failed job among the last `keep`: failed holds job ids by failure
-- time (sorted set), records their JSON without arguments (hash), jobs the
-- JSON of function and arguments a retry re-enqueues (hash; job is '' when
-- the job cannot be retried), kinds its job name and error type, "<name>\n<error>"
-- (hash: what a filter reads, rather than every record). Returns how many older
-- failed jobs were let go.
local function keep_failed(failed, records, jobs, kinds, job_id, record, failed_ms, keep, job)
  local parsed, fields = pcall(cjson.decode, record)
  if not parsed or type(fields) ~= 'table' then
    fields = {}
  end
  redis.call('ZADD', failed, failed_ms, job_id)
  redis.call('HSET', records, job_id, record)
  redis.call('HSET', kinds, job_id, tostring(fields['function']) .. '\n' .. tostring(fields['error']))
  if job ~= '' then
    redis.call('HSET', jobs, job_id, job)
  else
    redis.call('HDEL', jobs, job_id)
  end
  local excess = redis.call('ZCARD', failed) - tonumber(keep)
  if excess <= 0 then
    return 0
  end
  for _, old in ipairs(redis.call('ZRANGE', failed, 0, excess - 1)) do
    redis.call('HDEL', records, old)
    redis.call('HDEL', jobs, old)
    redis.call('HDEL', kinds, old)
  end
  redis.call('ZREMRANGEBYRANK', failed, 0, excess - 1)
  return excess
end
