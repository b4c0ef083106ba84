-- The rate rule of backends/flow.py rate_decision, as one atomic step: reserve the next slot
-- of a bucket kept as its theoretical arrival time (tat).
-- KEYS: the bucket key. ARGV: now (s), interval (s), burst (tokens).
-- Returns the wait (s) for the reserved slot, as text ('0' : run now).
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
local start = now
if tat ~= nil and tat >= now then start = tat end
local wait = start - now - (tonumber(ARGV[3]) - 1) * interval
if wait < 0 then wait = 0 end
-- The key lives until the bucket is full again (tat passed): then it reads as a new bucket.
redis.call('SET', KEYS[1], string.format('%.17g', start + interval),
  'PX', math.ceil((start + interval - now) * 1000) + 1000)
return string.format('%.17g', wait)
