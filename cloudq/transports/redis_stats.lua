-- Visible / in flight (received, hidden) / delayed (never received, hidden) counts.
-- KEYS: vis, counts.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local visible = redis.call('ZCOUNT', KEYS[1], '-inf', now)
local in_flight, delayed = 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  if redis.call('HEXISTS', KEYS[2], id) == 1 then in_flight = in_flight + 1 else delayed = delayed + 1 end
end
return {visible, in_flight, delayed}
