-- The count of backends/base.py ResultBackend.count_once, as one atomic step: a member is
-- added to the set once, however often it is added.
-- KEYS: the set key. ARGV: member, expire-at (epoch s, or '' for none).
-- Returns {1 if the member is new else 0, the set's size}.
local added = redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
return {added, redis.call('SCARD', KEYS[1])}
