-- Visible / in flight (received, hidden) / delayed (never received, hidden) counts.
-- KEYS: one queue. Messages waiting behind a FIFO group's head count as visible (as on SQS).
local q = queue_keys(0)
local now = now_ms()
local in_flight, delayed = 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', q.vis, '(' .. now, '+inf')) do
  if redis.call('HEXISTS', q.counts, id) == 1 then in_flight = in_flight + 1 else delayed = delayed + 1 end
end
return {redis.call('HLEN', q.msgs) - in_flight - delayed, in_flight, delayed}
