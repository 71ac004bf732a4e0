-- Finish a batch of claimed jobs in one step, as arq finishes one job.
-- KEYS: queue, tally, failed, records, kept_jobs, jobs...
-- ARGV: keep_ms, tally_keep_s, failed_keep, outcomes...
-- REPLY: finished
-- jobs: for each job, in order, arq:job:<id>, arq:in-progress:<id>,
-- arq:retry:<id>, arq:result:<id>, <queue>:reply:<id>. outcomes: for each job,
-- seven values: id, verdict, result, reply, defer_ms, record, retry_job.
-- verdict 'completed' or 'failed': the result is stored for keep_ms, the job,
-- its claim and its try count deleted, the job taken off the queue, the reply
-- (unless '') pushed for the caller; 'failed' also keeps the failure (record,
-- retry_job: see keep_failed). verdict 'retried': the job goes back on the
-- queue defer_ms from now and its claim is let go. tally: this minute's counts
-- by verdict, kept tally_keep_s. finished: how many jobs were finished.
local keep_ms, failed_keep = ARGV[1], ARGV[3]
local counts = {completed = 0, failed = 0, retried = 0}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local finished, done = 0, {}
for i = 4, #ARGV, 7 do
  local base = ((i - 4) / 7) * 5 + 5
  local job_key, claim_key, retry_key = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local result_key, reply_key = KEYS[base + 4], KEYS[base + 5]
  local id, verdict, result, reply = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  counts[verdict] = counts[verdict] + 1
  if verdict == 'retried' then
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[i + 4]), id)
    redis.call('DEL', claim_key)
  else
    redis.call('SET', result_key, result, 'PX', keep_ms)
    redis.call('DEL', job_key, claim_key, retry_key)
    done[#done + 1] = id
    if reply ~= '' then
      redis.call('LPUSH', reply_key, reply)
      redis.call('PEXPIRE', reply_key, keep_ms)
    end
    if verdict == 'failed' then
      keep_failed(KEYS[3], KEYS[4], KEYS[5], id, ARGV[i + 5], now, failed_keep, ARGV[i + 6])
    end
    finished = finished + 1
  end
end
if #done > 0 then
  redis.call('ZREM', KEYS[1], unpack(done))
end
for verdict, n in pairs(counts) do
  if n > 0 then
    redis.call('HINCRBY', KEYS[2], verdict, n)
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return finished
