-- Add messages to a queue. KEYS: one queue, then on a FIFO queue one deduplication key per
-- message. ARGV: fifo flag, the deduplication window (ms), then (entry JSON, group, delay ms)
-- per message. Returns the new ids; a FIFO message whose deduplication key is set (sent within
-- the window) is not added, and its id is the first message's (as SQS answers).
local q = queue_keys(0)
local fifo = ARGV[1] == '1'
local window = tonumber(ARGV[2])
local now = now_ms()
local ids, added = {}, 0
for i = 3, #ARGV, 3 do
  local seen = fifo and KEYS[#PARTS + i / 3]
  local first = seen and redis.call('GET', seen)
  if first then
    ids[#ids + 1] = first
  else
    local id = add(q, fifo, ARGV[i], ARGV[i + 1], now + tonumber(ARGV[i + 2]), now)
    -- The window is the key's expiry, on the server's clock, from the first send only.
    if seen then redis.call('SET', seen, id, 'PX', window) end
    ids[#ids + 1] = id
    added = added + 1
  end
end
wake(q, added)
return ids
