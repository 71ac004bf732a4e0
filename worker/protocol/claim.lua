-- Claim a batch of ready write jobs, in queue order, for one worker.
-- KEYS: writes, queue, lanes, jobs...
-- ARGV: lease_ms, limit, max_writes, max_bytes, max_others, worker, candidates...
-- REPLY: claimed, others, now, due_ms
-- writes: <queue>:writes; queue: <queue>; lanes: <queue>:lanes (lane -> the job holding
-- it). candidates: ids in queue order, each tagged 'w' (from writes) or 'q' (from
-- queue); jobs: for each, arq:job:<id>, arq:in-progress:<id>, arq:retry:<id>.
-- A job is ready when its score (ms) has come and no one holds its claim. A ready
-- write job is claimed as arq claims one (its claim set for lease_ms, holding
-- '<worker>:<try>', and its try counted), unless it writes to a lane that an
-- unfinished job not of this batch holds, or that an earlier job left waiting holds:
-- jobs of one lane run one batch at a time, in queue order. The batch ends before a
-- job that would take it past limit jobs, max_writes writes or max_bytes bytes (the
-- first job always fits). claimed lists id, try, job and lanes for each; others lists
-- up to max_others ready jobs of queue that are not write jobs, for arq's own path
-- (cron, durable tools, anything that does not decode). now: the queue's clock (ms);
-- due_ms: how long until the next job not yet ready may start (-1: none waits).
local lease_ms, limit = ARGV[1], tonumber(ARGV[2])
local max_writes, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_others, worker = tonumber(ARGV[5]), ARGV[6]
local now = queue_ms()
local claimed, others = {}, {}
local taken, writes, bytes = 0, 0, 0
local mine, waiting = {}, {}

-- A lane is free for a job when no one holds it, the job itself or this batch does, or
-- its holder has finished (it left both sets).
local function free(lane, holder, id)
  if waiting[lane] then
    return false
  end
  return not holder or holder == id or mine[holder] or (not redis.call('ZSCORE', KEYS[1], holder)
    and not redis.call('ZSCORE', KEYS[2], holder))
end

for i = 7, #ARGV do
  local tagged = ARGV[i]
  local from, id = string.sub(tagged, 1, 1), string.sub(tagged, 2)
  local set = from == 'w' and KEYS[1] or KEYS[2]
  local base = (i - 7) * 3 + 3
  local job_key, claim_key, retry_key = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local score = redis.call('ZSCORE', set, id)
  if score and tonumber(score) <= now and redis.call('EXISTS', claim_key) == 0 then
    local job = redis.call('GET', job_key)
    local f, n, lanes
    if job then
      local _
      _, f, n, lanes = stamp_of(job)
      if not f and #job <= MAX_JOB_BYTES then
        local ok, decoded = pcall(cjson.decode, job)
        if ok and type(decoded) == 'table' and type(decoded.f) == 'string' then
          f = decoded.f
          if is_write_job(f) then
            lanes, n = lanes_of(decoded)
          end
        end
      end
    end
    if not job and from == 'w' then
      redis.call('ZREM', set, id)  -- its record is gone: nothing is left to run or answer
    elseif from == 'q' and not (f and is_write_job(f)) then
      if #others < max_others then
        others[#others + 1] = id
      end
    else
      -- A write job, or anything on writes (the worker answers what it cannot run).
      lanes, n = lanes or {}, n or 1
      local held = hmget(KEYS[3], lanes)
      local ready = true
      for j, lane in ipairs(lanes) do
        if not free(lane, held[j], id) then
          ready = false
        end
      end
      if ready and taken > 0 and (taken >= limit or writes + n > max_writes
          or bytes + #job > max_bytes) then
        break
      end
      if ready then
        local try = redis.call('INCRBY', retry_key, 1)
        if try == 1 then
          redis.call('EXPIRE', retry_key, 88400)
        end
        redis.call('SET', claim_key, worker .. ':' .. try, 'PX', lease_ms)
        for j, lane in ipairs(lanes) do
          if not (held[j] and mine[held[j]]) then
            redis.call('HSET', KEYS[3], lane, id)
          end
        end
        mine[id] = true
        claimed[#claimed + 1] = {id, try, job, lanes}
        taken, writes, bytes = taken + 1, writes + n, bytes + #job
      else
        -- Waiting keeps its lanes from jobs after it: they must not overtake it.
        for _, lane in ipairs(lanes) do
          waiting[lane] = true
        end
      end
    end
  end
end

local due = -1
for _, set in ipairs({KEYS[1], KEYS[2]}) do
  local next = redis.call('ZRANGEBYSCORE', set, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if next[2] then
    local wait = math.ceil(tonumber(next[2]) - now)
    if due < 0 or wait < due then
      due = wait
    end
  end
end
return {claimed, others, now, due}
