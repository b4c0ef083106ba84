-- The revoke of backends/base.py ResultBackend.revoke, as one atomic step: REVOKED is stored
-- unless a live record has finished (SUCCESS, FAILURE, REVOKED); attempts and name are kept.
-- KEYS: the record key. ARGV: the revoked record JSON (attempts 0, no name), now (s),
-- expire-at (epoch s, or '' for none). Returns nil when revoked, or the finished record.
local raw = redis.call('GET', KEYS[1])
local record = ARGV[1]
if raw then
  local found = cjson.decode(raw)
  local expires = found['expires_at']
  local expired = expires ~= nil and expires ~= cjson.null and expires < tonumber(ARGV[2])
  if not expired then
    local state = found['state']
    if state == 'SUCCESS' or state == 'FAILURE' or state == 'REVOKED' then return raw end
    -- Splice the kept fields in without re-encoding the record (keeps floats exact).
    local attempts = tonumber(found['attempts']) or 0
    record = string.gsub(record, '"attempts":%-?%d+', '"attempts":' .. attempts, 1)
    local name = cjson.encode(found['task_name'] or '')
    record = string.gsub(record, '"task_name":""', '"task_name":' .. string.gsub(name, '%%', '%%%%'), 1)
  end
end
redis.call('SET', KEYS[1], record)
if ARGV[3] ~= '' then redis.call('EXPIREAT', KEYS[1], ARGV[3]) end
return false
