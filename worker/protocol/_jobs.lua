-- Shared by the scripts that read jobs (prepended when they are loaded, after the
-- table WRITE_OWNERS, which the write declarations generate: for each write job, the
-- argument that names its owner, by name and by position).

-- The queue's clock in milliseconds: every time the queue compares comes from here.
local function queue_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The jobs a worker runs as writes: each write, and the two lists of writes.
local LISTS = {ops = true, apply_batch = true}
local function is_write_job(f)
  return WRITE_OWNERS[f] ~= nil or LISTS[f] ~= nil
end

-- The owner a write acts on: its owner_id, or the part of its key before ':'.
local function owner_of(name, args, kwargs)
  local where = WRITE_OWNERS[name]
  if not where then
    return nil
  end
  local value = type(kwargs) == 'table' and kwargs[where[1]] or nil
  if value == nil and type(args) == 'table' then
    value = args[where[2]]
  end
  if type(value) ~= 'string' then
    return nil
  end
  if where[1] == 'key' then
    return string.match(value, '^([^:]+):')
  end
  return value
end

-- A write job's lanes (each owner it writes to, hashed to a number; jobs sharing a
-- lane run one at a time, in queue order) and how many writes it carries.
local function lanes_of(job)
  local seen, lanes = {}, {}
  local function add(owner)
    if owner then
      local lane = tonumber(string.sub(redis.sha1hex(owner), 1, 8), 16)
      if not seen[lane] then
        seen[lane] = true
        lanes[#lanes + 1] = lane
      end
    end
  end
  local f, a, k = job.f, job.a, job.k
  if WRITE_OWNERS[f] then
    add(owner_of(f, a, k))
    return lanes, 1
  end
  local list = (type(k) == 'table' and k.ops) or (type(a) == 'table' and a[1]) or nil
  if type(list) ~= 'table' then
    return lanes, 1
  end
  for _, item in ipairs(list) do
    if type(item) == 'table' then
      if f == 'ops' then
        if type(item.op) == 'string' then
          add(owner_of(item.op, nil, item.args))
        end
      else
        add(owner_of('put', nil, item))
      end
    end
  end
  return lanes, math.max(#list, 1)
end

-- The queue's stamp on a job (enqueue.lua puts it first): when the queue took it, its
-- function, how many writes it carries and its lanes; nil for a job not stamped.
local STAMP = '^{"q":{"t":(%d+),"f":"([%w_%.:%-]+)","n":(%d+),"l":%[([%d,]*)%]},'
local function stamp_of(job)
  local t, f, n, l = string.match(job, STAMP)
  if not t then
    return nil
  end
  local lanes = {}
  for lane in string.gmatch(l, '%d+') do
    lanes[#lanes + 1] = tonumber(lane)
  end
  return tonumber(t), f, tonumber(n), lanes
end

-- HMGET of many fields, in chunks that Lua's unpack can take.
local function hmget(key, fields)
  local values = {}
  for first = 1, #fields, 1000 do
    local chunk = {}
    for i = first, math.min(first + 999, #fields) do
      chunk[#chunk + 1] = fields[i]
    end
    for _, value in ipairs(redis.call('HMGET', key, unpack(chunk))) do
      values[#values + 1] = value
    end
  end
  return values
end
