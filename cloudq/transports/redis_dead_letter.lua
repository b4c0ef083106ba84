-- Move one received message to the dead-letter queue, atomically: it is never in neither.
-- KEYS: source vis, msgs, counts, tokens, dlq seq, dlq msgs, dlq vis, dlq notify.
-- ARGV: "id:token" handle, the dead letter's entry JSON.
local id, token = string.match(ARGV[1], '^(%d+):(%d+)$')
if not id or redis.call('HGET', KEYS[4], id) ~= token then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local new_id = string.format('%016d', redis.call('INCR', KEYS[5]))
redis.call('HSET', KEYS[6], new_id, ARGV[2])
redis.call('ZADD', KEYS[7], now, new_id)
redis.call('RPUSH', KEYS[8], '1')
redis.call('LTRIM', KEYS[8], -64, -1)
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
return 1
