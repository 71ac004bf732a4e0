-- Keep one failed job, and only the last `keep` of them.
-- KEYS: failed, records, jobs
-- ARGV: job_id, record, failed_ms, keep, job
-- REPLY: let_go
-- failed: job ids by failure time (sorted set); records: job id -> JSON without
-- arguments (hash); jobs: job id -> JSON of function and arguments, what a retry
-- re-enqueues (hash). job is '' when the job cannot be retried. let_go: how
-- many older failed jobs were let go.
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
else
  redis.call('HDEL', KEYS[3], ARGV[1])
end
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if excess <= 0 then
  return 0
end
for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do
  redis.call('HDEL', KEYS[2], old)
  redis.call('HDEL', KEYS[3], old)
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
return excess
