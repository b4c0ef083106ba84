-- Shared helpers, prepended to every redis_*.lua script of the transport (see redis.py).
-- A queue is nine keys, passed in this order by Python (KEYS[offset + 1 .. offset + 9]):
--   seq     counter of message ids (zero-padded, so ids sort in send order)
--   msgs    hash id -> entry JSON (body, attributes, group, sent-at ms)
--   vis     sorted set id -> the time (ms, server clock) the message is visible from
--   counts  hash id -> receive count (present once received: in flight rather than delayed)
--   tokens  hash id -> current receipt token; a handle "id:token" with an older token is stale
--   notify  short list pushed on changes, so long polls block on BLPOP instead of spinning
-- FIFO queues only:
--   group   hash id -> message group
--   order   sorted set of "<group>\0<id>", all scores 0: each group's messages in send order
--   due     hash id -> the time (ms) a never-received message may be handed out
-- and, outside the nine, one key "<queue>:dedup:<deduplication id>" per id sent in the last
-- 5 minutes (redis_send.lua), holding the message id it was sent as.
-- On a FIFO queue, vis holds a group's received messages plus its first never-received one
-- (its frontier); the rest of a group waits in order, so blocked groups cost no scanning.
local PARTS = {'seq', 'msgs', 'vis', 'counts', 'tokens', 'notify', 'group', 'order', 'due'}

local function queue_keys(offset)
  local q = {}
  for i, part in ipairs(PARTS) do q[part] = KEYS[offset + i] end
  return q
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function wake(q, n)
  for _ = 1, math.min(n, 10) do redis.call('RPUSH', q.notify, '1') end
  redis.call('LTRIM', q.notify, -16, -1)
end

local function group_range(group)
  return '[' .. group .. '\0', '(' .. group .. '\1'
end

-- Store one message (entry JSON without its sent-at), visible from `due`; returns its id.
local function add(q, fifo, entry, group, due, now)
  local id = string.format('%016d', redis.call('INCR', q.seq))
  redis.call('HSET', q.msgs, id, string.sub(entry, 1, -2) .. ',"t":' .. now .. '}')
  if not fifo then
    redis.call('ZADD', q.vis, due, id)
    return id
  end
  local first, last = group_range(group)
  local tail = redis.call('ZREVRANGEBYLEX', q.order, last, first, 'LIMIT', 0, 1)[1]
  redis.call('ZADD', q.order, 0, group .. '\0' .. id)
  redis.call('HSET', q.group, id, group)
  redis.call('HSET', q.due, id, due)
  -- The group's frontier, unless an earlier never-received message already is.
  if not tail or redis.call('HEXISTS', q.counts, string.sub(tail, #group + 2)) == 1 then
    redis.call('ZADD', q.vis, due, id)
  end
  return id
end

local function remove(q, fifo, id)
  redis.call('ZREM', q.vis, id)
  redis.call('HDEL', q.msgs, id)
  redis.call('HDEL', q.counts, id)
  redis.call('HDEL', q.tokens, id)
  if fifo then
    local group = redis.call('HGET', q.group, id)
    if group then redis.call('ZREM', q.order, group .. '\0' .. id) end
    redis.call('HDEL', q.group, id)
    redis.call('HDEL', q.due, id)
  end
end

-- The message id of a receipt handle "id:token" if the token is current, else nil.
local function current(q, handle)
  local id, token = string.match(handle, '^(%d+):(%d+)$')
  if id and redis.call('HGET', q.tokens, id) == token then return id end
  return nil
end
