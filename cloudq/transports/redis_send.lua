-- Add messages to a queue. KEYS: one queue. ARGV: fifo flag, then (entry JSON, group, delay ms)
-- per message. Returns the new ids.
local q = queue_keys(0)
local fifo = ARGV[1] == '1'
local now = now_ms()
local ids = {}
for i = 2, #ARGV, 3 do
  ids[#ids + 1] = add(q, fifo, ARGV[i], ARGV[i + 1], now + tonumber(ARGV[i + 2]), now)
end
wake(q, #ids)
return ids
