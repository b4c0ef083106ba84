-- Take up to ARGV[1] visible messages and hide them for ARGV[2] ms, atomically: a worker that
-- dies after this simply lets them reappear when their score passes.
-- KEYS: vis, msgs, counts, tokens. ARGV: limit, hide ms, fifo flag ('1' or '0').
-- Returns a flat list: id, entry JSON, receive count, receipt token, sent-at score...
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local hide = tonumber(ARGV[2])
local fifo = ARGV[3] == '1'
local busy = {}
if fifo then
  -- A group with a message in flight hands out nothing else until it is settled.
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
    if redis.call('HEXISTS', KEYS[3], id) == 1 then
      local raw = redis.call('HGET', KEYS[2], id)
      if raw then
        local group = cjson.decode(raw)['g']
        if group then busy[group] = true end
      end
    end
  end
end
local scan = limit
if fifo then scan = 1000 end
local out = {}
local taken = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, scan)) do
  if taken >= limit then break end
  local raw = redis.call('HGET', KEYS[2], id)
  if not raw then
    redis.call('ZREM', KEYS[1], id)
  else
    local group = nil
    if fifo then group = cjson.decode(raw)['g'] end
    if not (group and busy[group]) then
      local count = redis.call('HINCRBY', KEYS[3], id, 1)
      local token = redis.call('HINCRBY', KEYS[4], id, 1)
      redis.call('ZADD', KEYS[1], now + hide, id)
      out[#out + 1] = id
      out[#out + 1] = raw
      out[#out + 1] = count
      out[#out + 1] = token
      taken = taken + 1
    end
  end
end
return out
