-- The lease rule of backends/flow.py lease_decision, as one atomic step: a hash of
-- holder -> lease expiry (s); expired leases are dropped.
-- KEYS: the lease hash. ARGV: holder, limit, lease seconds, now (s).
-- Returns '0' when the holder holds a lease (taken or renewed), else the seconds until the
-- first live lease ends (nothing else changes), as text.
local now = tonumber(ARGV[4])
local entries = redis.call('HGETALL', KEYS[1])
local others, holds, first = 0, false, nil
local latest = now + tonumber(ARGV[3])
for i = 1, #entries, 2 do
  local name, expires = entries[i], tonumber(entries[i + 1])
  if expires <= now then
    redis.call('HDEL', KEYS[1], name)
  elseif name == ARGV[1] then
    holds = true
  else
    others = others + 1
    if first == nil or expires < first then first = expires end
    if expires > latest then latest = expires end
  end
end
if not holds and others >= tonumber(ARGV[2]) then
  return string.format('%.17g', first - now)
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.17g', now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], math.ceil((latest - now) * 1000) + 1000)
return '0'
