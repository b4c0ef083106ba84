-- Delete (ARGV[2] = 'delete') or change the visibility (ARGV[2] = ms from now) of received
-- messages, each named by a handle "id:token"; a handle whose token is stale is ignored.
-- KEYS: one queue. ARGV: fifo flag, action, handle...  Returns how many were current.
local q = queue_keys(0)
local fifo, action = ARGV[1] == '1', ARGV[2]
local now = now_ms()
local changed = 0
for i = 3, #ARGV do
  local id = current(q, ARGV[i])
  if id then
    if action == 'delete' then
      remove(q, fifo, id)
    else
      redis.call('ZADD', q.vis, 'XX', now + tonumber(action), id)
    end
    changed = changed + 1
  end
end
-- Wake long polls when something became receivable: a handed-back message, or a FIFO group
-- whose message was deleted.
if changed > 0 and (action == '0' or (fifo and action == 'delete')) then wake(q, changed) end
return changed
