-- Add messages to a queue. KEYS: seq, msgs, vis, notify. ARGV: pairs of (entry JSON, delay ms).
-- Ids are zero-padded sequence numbers, so equal visibility scores sort in send order (FIFO).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = {}
for i = 1, #ARGV, 2 do
  local id = string.format('%016d', redis.call('INCR', KEYS[1]))
  redis.call('HSET', KEYS[2], id, ARGV[i])
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[i + 1]), id)
  ids[#ids + 1] = id
end
redis.call('RPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], -64, -1)
return ids
