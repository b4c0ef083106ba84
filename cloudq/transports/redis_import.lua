-- A Celery queue (issue 25): move up to ARGV[1] of the messages a Celery producer pushed on
-- kombu's lists into the queue's own keys, visible now, in one atomic step (nothing is in
-- neither place). Kombu pushes with LPUSH, so a list's oldest item is at its right.
-- KEYS: one queue, then kombu's lists, the highest priority first. ARGV: limit.
-- Returns how many were moved.
local q = queue_keys(0)
local limit = tonumber(ARGV[1])
local now = now_ms()
local moved = 0
for k = #PARTS + 1, #KEYS do
  while moved < limit do
    local item = redis.call('RPOP', KEYS[k])
    if not item then break end
    add(q, false, cjson.encode({b = item, g = cjson.null}), '', now, now)
    moved = moved + 1
  end
end
wake(q, moved)
return moved
