-- Delete (ARGV[1] = 'delete') or change the visibility (ARGV[1] = ms from now) of received
-- messages, each named by "id:token". A handle whose token is no longer current is ignored.
-- KEYS: vis, msgs, counts, tokens, notify. ARGV: action, handle...
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local action = ARGV[1]
local changed = 0
for i = 2, #ARGV do
  local id, token = string.match(ARGV[i], '^(%d+):(%d+)$')
  if id and redis.call('HGET', KEYS[4], id) == token then
    if action == 'delete' then
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('HDEL', KEYS[3], id)
      redis.call('HDEL', KEYS[4], id)
    else
      redis.call('ZADD', KEYS[1], 'XX', now + tonumber(action), id)
    end
    changed = changed + 1
  end
end
if changed > 0 then
  redis.call('RPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], -64, -1)
end
return changed
