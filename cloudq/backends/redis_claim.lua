-- The claim of backends/base.py claim_decision, as one atomic step.
-- KEYS: the record key. ARGV: owner, now (s), claimed record JSON (attempts set here),
-- message id, receive count, expire-at (epoch s, or '' for none).
-- Returns {'CLAIMED', record} or {'REFUSED', found record}.
local raw = redis.call('GET', KEYS[1])
local now = tonumber(ARGV[2])
local attempts = 0
if raw then
  local found = cjson.decode(raw)
  local expired = found['expires_at'] ~= cjson.null and found['expires_at'] ~= nil and found['expires_at'] < now
  if not expired then
    if found['state'] == 'SUCCESS' or found['state'] == 'REVOKED' then return {'REFUSED', raw} end
    local lease = found['lease_expires_at']
    local live = lease ~= nil and lease ~= cjson.null and lease > now
    local other = found['lease_owner'] ~= nil and found['lease_owner'] ~= cjson.null and found['lease_owner'] ~= ARGV[1]
    local count = found['lease_receive_count']
    local redelivered = found['lease_message_id'] == ARGV[4] and count ~= nil and count ~= cjson.null
      and count < tonumber(ARGV[5])
    if live and other and not redelivered then return {'REFUSED', raw} end
    attempts = tonumber(found['attempts']) or 0
  end
end
-- Splice the attempt count into the record JSON without re-encoding it (keeps floats exact).
local record = string.gsub(ARGV[3], '"attempts":%-?%d+', '"attempts":' .. (attempts + 1), 1)
redis.call('SET', KEYS[1], record)
if ARGV[6] ~= '' then redis.call('EXPIREAT', KEYS[1], ARGV[6]) end
return {'CLAIMED', record}
