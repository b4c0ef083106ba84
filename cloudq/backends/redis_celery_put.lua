-- A task's result as Celery's Redis backend writes it (celery/backends/redis.py ``set``):
-- the meta under its key, and the same meta PUBLISHed on the key's channel, which a waiting
-- ``AsyncResult.get()`` is subscribed to. Celery's rule (``_store_result``): a SUCCESS is
-- never overwritten, so a late failure of an earlier attempt cannot hide the value.
-- KEYS: celery-task-meta-<id>. ARGV: meta JSON, seconds to keep (0: for ever).
-- Returns 1 when written, 0 when a SUCCESS was kept.
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
