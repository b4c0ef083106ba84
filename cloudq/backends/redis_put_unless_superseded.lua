-- The guarded store of backends/base.py superseded, as one atomic step: the record is stored
-- unless a live record of a later attempt is there.
-- KEYS: the record key. ARGV: record JSON, the writer's attempt, now (s), expire-at (epoch s,
-- or '' for none). Returns nil when stored, or the stored record that supersedes it.
local raw = redis.call('GET', KEYS[1])
if raw then
  local found = cjson.decode(raw)
  local expires = found['expires_at']
  local expired = expires ~= nil and expires ~= cjson.null and expires < tonumber(ARGV[3])
  if not expired and (tonumber(found['attempts']) or 0) > tonumber(ARGV[2]) then return raw end
end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[4] ~= '' then redis.call('EXPIREAT', KEYS[1], ARGV[4]) end
return false
