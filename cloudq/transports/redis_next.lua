-- Milliseconds until the next hidden message of a queue becomes visible (-1: none). KEYS: vis.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local next = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #next == 0 then return -1 end
return tonumber(next[2]) - now
