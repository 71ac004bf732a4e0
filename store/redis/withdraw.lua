-- withdraw an op id that was not applied, so that no attempt sent by then ever is.
-- KEYS: op
-- ARGV: sent_at_ms, op_ttl_ms
-- REPLY: 1 withdrawn (nothing was applied; the fence "w:<sent_at_ms>" now refuses
-- every attempt sent at or before sent_at_ms, see write.lua), or 0 when an
-- outcome is kept (an applied write or delete, or a refusal that replays): the
-- caller runs the operation again under its op id to read it.
-- A kept version conflict is no outcome here: it replays only for the same
-- expected version, so a read-and-retry loop could still apply the op later.

local seen = redis.call('GET', KEYS[1])
local sent = tonumber(ARGV[1])
if seen then
  if withdrawn(seen) then
    sent = math.max(sent, tonumber(string.sub(seen, 3)))
  elseif not (string.match(seen, '^1:') and bound_to(seen) ~= 'delete') then
    return 0
  end
end
redis.call('SET', KEYS[1], 'w:' .. sent, 'PX', ARGV[2])
return 1
