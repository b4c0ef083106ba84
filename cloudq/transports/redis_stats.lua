-- Visible / in flight (received, hidden) / delayed (never received, hidden) counts, and the
-- age (ms) of the oldest message, -1 when the queue is empty or too deep to look (ARGV[1]).
-- KEYS: one queue. Messages waiting behind a FIFO group's head count as visible (as on SQS).
local q = queue_keys(0)
local now = now_ms()
local in_flight, delayed = 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', q.vis, '(' .. now, '+inf')) do
  if redis.call('HEXISTS', q.counts, id) == 1 then in_flight = in_flight + 1 else delayed = delayed + 1 end
end
local total = redis.call('HLEN', q.msgs)
-- Ids are zero-padded send order: the smallest id left is the oldest message; its entry ends
-- with its sent-at time (see add in redis_common.lua). Read, never received: not a peek.
local age = -1
if total > 0 and total <= tonumber(ARGV[1]) then
  local oldest
  for _, id in ipairs(redis.call('HKEYS', q.msgs)) do
    if not oldest or id < oldest then oldest = id end
  end
  local sent = string.match(redis.call('HGET', q.msgs, oldest), ',"t":(%d+)}$')
  if sent then age = math.max(0, now - tonumber(sent)) end
end
return {total - in_flight - delayed, in_flight, delayed, age}
