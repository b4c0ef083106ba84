-- Move one received message to the dead-letter queue atomically: it is never in neither.
-- KEYS: the source queue, then the dead-letter queue. ARGV: handle, dead letter's entry JSON,
-- source fifo flag, dead-letter queue fifo flag, group. Returns the copy's id, or '' for a stale
-- handle.
local src, dlq = queue_keys(0), queue_keys(#PARTS)
local id = current(src, ARGV[1])
if not id then return '' end
local now = now_ms()
remove(src, ARGV[3] == '1', id)
local copy = add(dlq, ARGV[4] == '1', ARGV[2], ARGV[5], now, now)
wake(dlq, 1)
if ARGV[3] == '1' then wake(src, 1) end
return copy
