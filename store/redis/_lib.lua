-- Shared by every script (prepended when the scripts are loaded).

-- The server's clock in milliseconds: every expiry decision uses this one
-- clock, so clients with skewed clocks agree.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Byte-wise a < b. Lua's own '<' follows the server's collation locale,
-- while sorted sets order equal scores by bytes.
local function bytes_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The operation a kept op outcome is bound to: the last field of
-- "status:value:expected:op_name" (write.lua) or "existed:delete" (delete.lua);
-- '' for an outcome kept before op ids were bound, which binds nothing.
local function bound_to(seen)
  return string.match(seen, ':([%a_][%w_]*)$') or ''
end

-- An op id's fence (withdraw.lua): "w:<sent_at_ms>". Attempts sent up to that
-- time are refused; one sent later is a new attempt and its outcome replaces it.
local function withdrawn(seen)
  return string.sub(seen, 1, 2) == 'w:'
end

local function sent_after(fence, sent)
  return sent ~= '' and tonumber(sent) > tonumber(string.sub(fence, 3))
end
