-- The delete of backends/base.py ResultBackend.delete_schedule, with the rule of
-- backends/base.py schedule_change: an entry is removed only while it is there and, when an
-- expected definition is given, only while it is that one.
-- KEYS: the schedules hash. ARGV: name, expected definition (or '' for any).
-- Returns 1 when removed, else 0.
local found = redis.call('HGET', KEYS[1], ARGV[1])
if not found then return 0 end
if ARGV[2] ~= '' and found ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
