-- Take up to ARGV[1] visible messages and hide them for ARGV[2] ms, in one atomic step: a
-- worker that dies after this loses nothing, the messages reappear when their score passes.
-- KEYS: one queue. ARGV: limit, hide ms, fifo flag.
-- Returns a JSON array of [id, receive count, token, entry], or, when nothing is ready, the
-- milliseconds until the next hidden message becomes visible (-1: none).
local q = queue_keys(0)
local limit, hide, fifo = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local now = now_ms()

-- A FIFO group's next messages in order, or none while one of its received messages is
-- hidden (in flight). Received messages are always a prefix of the group (handed out in order).
local function group_picks(group, room)
  local picks, offset = {}, 0
  local first, last = group_range(group)
  while true do
    local members = redis.call('ZRANGEBYLEX', q.order, first, last, 'LIMIT', offset, 32)
    if #members == 0 then return picks end
    for _, member in ipairs(members) do
      local id = string.sub(member, #group + 2)
      if redis.call('HEXISTS', q.counts, id) == 1 then
        local score = redis.call('ZSCORE', q.vis, id)
        if score and tonumber(score) > now then return {} end
        if #picks < room then picks[#picks + 1] = id end
      else
        local due = tonumber(redis.call('HGET', q.due, id))
        if due > now or #picks >= room then
          redis.call('ZADD', q.vis, 'NX', due, id)  -- stays the group's frontier
          return picks
        end
        picks[#picks + 1] = id
      end
    end
    offset = offset + #members
  end
end

local function ready_ids()
  if not fifo then return redis.call('ZRANGEBYSCORE', q.vis, '-inf', now, 'LIMIT', 0, limit) end
  local picked, seen, offset = {}, {}, 0
  while #picked < limit and offset < 2000 do
    local ready = redis.call('ZRANGEBYSCORE', q.vis, '-inf', now, 'LIMIT', offset, 100)
    if #ready == 0 then break end
    for _, id in ipairs(ready) do
      local group = redis.call('HGET', q.group, id)
      if group and not seen[group] then
        seen[group] = true
        for _, pick in ipairs(group_picks(group, limit - #picked)) do picked[#picked + 1] = pick end
        if #picked >= limit then break end
      end
    end
    offset = offset + #ready
  end
  return picked
end

local out = {}
for _, id in ipairs(ready_ids()) do
  local entry = redis.call('HGET', q.msgs, id)
  if entry then
    local count = redis.call('HINCRBY', q.counts, id, 1)
    local token = redis.call('HINCRBY', q.tokens, id, 1)
    redis.call('ZADD', q.vis, now + hide, id)
    out[#out + 1] = '["' .. id .. '",' .. count .. ',' .. token .. ',' .. entry .. ']'
  else
    redis.call('ZREM', q.vis, id)
  end
end
if #out > 0 then return '[' .. table.concat(out, ',') .. ']' end
local upcoming = redis.call('ZRANGEBYSCORE', q.vis, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #upcoming == 0 then return -1 end
return tonumber(upcoming[2]) - now
