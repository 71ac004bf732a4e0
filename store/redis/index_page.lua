-- index_page: the next task ids of an owner's index after a cursor, in creation order.
-- KEYS: idx
-- ARGV: descending, after_score, after_task, limit
-- REPLY: tasks, scores
-- Up to `limit` entries after (after_score, after_task), or from the start when
-- after_score is empty; ties in score are ordered by the task id's bytes, as
-- sorted sets order them. Only the index is read: the caller fetches the
-- records with fetch.lua, which names their keys.

local descending = ARGV[1] == '1'
local after_score = tonumber(ARGV[2])
local after_task = ARGV[3]
local limit = tonumber(ARGV[4])
local tasks, scores = {}, {}
local offset = 0

local function past_cursor(task, score)
  if after_score == nil or score ~= after_score then return true end
  if descending then return bytes_before(task, after_task) end
  return bytes_before(after_task, task)
end

while true do
  local batch
  if descending then
    batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2] ~= '' and ARGV[2] or '+inf', '-inf',
      'WITHSCORES', 'LIMIT', offset, limit)
  else
    batch = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2] ~= '' and ARGV[2] or '-inf', '+inf',
      'WITHSCORES', 'LIMIT', offset, limit)
  end
  for i = 1, #batch, 2 do
    local task, score = batch[i], tonumber(batch[i + 1])
    if past_cursor(task, score) then
      tasks[#tasks + 1] = task
      scores[#scores + 1] = score
      if #tasks == limit then return {tasks, scores} end
    end
  end
  if #batch < 2 * limit then return {tasks, scores} end
  offset = offset + limit
end
