-- Finish claimed jobs of a batch in one step, as arq finishes one job, each only if
-- this worker still holds its claim.
-- KEYS: writes, queue, lanes, wake, tally, failed, records, kept_jobs, kinds, jobs...
-- ARGV: keep_ms, tally_keep_s, failed_keep, lanes_too, rest_count, rest_and_outcomes...
-- REPLY: finished
-- jobs: for each job, in order, arq:job:<id>, arq:in-progress:<id>, arq:retry:<id>,
-- arq:result:<id>, and where its reply goes: <queue>:reply:<id>, or the reply list its
-- producer named (<queue>:replies:<reply_to>, protocol 1.5; its reply then starts
-- '<id> '). outcomes: for each job, ten values: id, claim (what its claim holds while
-- this worker has it), verdict, result, reply, defer_ms, record, retry_job, lanes
-- (comma-separated), latency (its tally bucket, or ''). A job whose claim holds
-- anything else is left alone: the worker holding it now finishes it. verdict 'completed' or 'failed':
-- the result is stored for keep_ms, the job, its claim and its try count deleted, the
-- job taken off writes and queue, the reply (unless '') pushed for the caller and kept
-- keep_ms; 'failed' also keeps the failure (record, retry_job: see keep_failed).
-- verdict 'retried': the job keeps its place in the queue and its lanes, and its claim
-- becomes a back-off that no one holds for defer_ms.
-- A batch too large for one call is finished in several, its last jobs first, so that
-- its first job on each lane, which holds the lane, is finished last. The call that
-- finishes the first jobs has lanes_too = 1 and, before the outcomes, rest_count
-- triples (id, unfinished 0/1, lanes) for the jobs finished before it; it passes each
-- lane the batch held to the batch's first job on it that is not finished (retried,
-- or left alone), or lets it go and wakes a worker idle on wake to take what waited on
-- it. tally: this minute's counts by verdict and of finished jobs by latency bucket,
-- kept tally_keep_s. finished: for each
-- job of the outcomes, 1 when this call finished or retried it, 0 when it was left
-- alone.
local keep_ms, failed_keep = ARGV[1], ARGV[3]
local lanes_too, rest = ARGV[4] == '1', tonumber(ARGV[5])
local counts = {completed = 0, failed = 0, retried = 0}
local now = queue_ms()
local finished, done, ours, kept = {}, {}, {}, {}
local batch_lanes, seen, waits_on = {}, {}, {}
local function note(id, unfinished, lanes)
  ours[id] = true
  for lane in string.gmatch(lanes, '%d+') do
    if not seen[lane] then
      seen[lane] = true
      batch_lanes[#batch_lanes + 1] = lane
    end
    if unfinished and not waits_on[lane] then
      waits_on[lane] = id
    end
  end
end
local first = 6 + rest * 3
for i = first, #ARGV, 10 do
  local base = ((i - first) / 10) * 5 + 9
  local job_key, claim_key, retry_key = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local result_key, reply_key = KEYS[base + 4], KEYS[base + 5]
  local id, claim, verdict, result, reply = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    ARGV[i + 4]
  local held = redis.call('GET', claim_key) == claim
  note(id, not held or verdict == 'retried', ARGV[i + 8])
  if not held then
    finished[#finished + 1] = 0
  elseif verdict == 'retried' then
    redis.call('SET', claim_key, 'backoff', 'PX', math.max(tonumber(ARGV[i + 5]), 1))
    counts.retried = counts.retried + 1
    finished[#finished + 1] = 1
  else
    redis.call('SET', result_key, result, 'PX', keep_ms)
    redis.call('DEL', job_key, claim_key, retry_key)
    done[#done + 1] = id
    if reply ~= '' then
      redis.call('LPUSH', reply_key, reply)
      if not kept[reply_key] then  -- a producer's reply list is kept once a call
        kept[reply_key] = true
        redis.call('PEXPIRE', reply_key, keep_ms)
      end
    end
    if verdict == 'failed' then
      keep_failed(KEYS[6], KEYS[7], KEYS[8], KEYS[9], id, ARGV[i + 6], now, failed_keep,
        ARGV[i + 7])
    end
    counts[verdict] = counts[verdict] + 1
    if ARGV[i + 9] ~= '' then
      counts[ARGV[i + 9]] = (counts[ARGV[i + 9]] or 0) + 1
    end
    finished[#finished + 1] = 1
  end
end
for i = 6, first - 1, 3 do
  note(ARGV[i], ARGV[i + 1] == '1', ARGV[i + 2])
end
if #done > 0 then
  redis.call('ZREM', KEYS[1], unpack(done))
  redis.call('ZREM', KEYS[2], unpack(done))
end
local freed = false
if lanes_too and #batch_lanes > 0 then
  local holders = hmget(KEYS[3], batch_lanes)
  for j, lane in ipairs(batch_lanes) do
    local holder = holders[j]
    if holder and ours[holder] then
      if waits_on[lane] then
        if waits_on[lane] ~= holder then
          redis.call('HSET', KEYS[3], lane, waits_on[lane])
        end
      else
        redis.call('HDEL', KEYS[3], lane)
        freed = true
      end
    end
  end
end
if freed and redis.call('LLEN', KEYS[4]) == 0
    and redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) > 0 then
  redis.call('LPUSH', KEYS[4], '1')
  redis.call('PEXPIRE', KEYS[4], 86400000)
end
for name, n in pairs(counts) do
  if n > 0 then
    redis.call('HINCRBY', KEYS[5], name, n)
  end
end
redis.call('EXPIRE', KEYS[5], ARGV[2])
return finished
