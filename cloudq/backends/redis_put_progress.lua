-- The progress rule of backends/flow.py progress_allowed, as one atomic step: the record
-- becomes PROGRESS with the report while the owner holds its claim, which is kept; the task
-- id goes in the progress index (scored by now), which forgets ids not reported since ARGV[5].
-- KEYS: the record key, the progress index. ARGV: owner, now (s), the progress JSON, the
-- task id, the index's horizon (s).
-- Returns 1 when stored, 0 when the owner does not hold the claim.
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local found = cjson.decode(raw)
local now = tonumber(ARGV[2])
local expires = found['expires_at']
if expires ~= nil and expires ~= cjson.null and expires < now then return 0 end
if found['state'] ~= 'STARTED' and found['state'] ~= 'PROGRESS' then return 0 end
local lease = found['lease_expires_at']
if found['lease_owner'] ~= ARGV[1] or lease == nil or lease == cjson.null or lease <= now then return 0 end
-- Splice, without re-encoding the record (keeps floats exact): the state is its first
-- "state" key; progress is its last field (ResultRecord keeps it last), so its last
-- ',"progress":' key runs to the closing brace.
local record = string.gsub(raw, '"state":"[A-Z]+"', '"state":"PROGRESS"', 1)
local at, position = nil, 0
repeat
  position = string.find(record, ',"progress":', position + 1, true)
  if position then at = position end
until not position
record = string.sub(record, 1, at - 1) .. ',"progress":' .. ARGV[3] .. '}'
redis.call('SET', KEYS[1], record, 'KEEPTTL')
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
return 1
