-- Applies a care contact's outcome to a dispatched task, if the caller
-- holds the dispatch's fencing token. ARGV[3] = id, ARGV[4] = fence,
-- ARGV[5] = action: 'retry' (same cycle, next attempt), 'rearm' (next
-- periodic cycle) or 'done'; ARGV[6] = due for retry/rearm; ARGV[7] = the
-- updated encoded task. Returns 'ok', or the reason it was refused:
-- 'missing', 'state:<state>' or 'fence'.
local id, f, action, due, data = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
local k = tkey(id)
local v = redis.call('HMGET', k, 'state', 'fence', 'prio', 'attempt', 'cycle')
if not v[1] then return 'missing' end
if v[1] ~= 'dispatched' then return 'state:' .. v[1] end
if v[2] ~= f then return 'fence' end
local pr = clamp(v[3])
redis.call('ZREM', SENT, id)
if action == 'retry' then
  redis.call('HSET', k, 'state', 'pending', 'due', due, 'attempt', num(v[4]) + 1,
    'data', data, 'skip', '', 'agent', '', 'delivery', '')
  redis.call('ZADD', dkey(pr), due, id)
elseif action == 'rearm' then
  redis.call('HSET', k, 'state', 'pending', 'due', due, 'attempt', 0,
    'cycle', num(v[5]) + 1, 'data', data, 'skip', '', 'agent', '', 'delivery', '')
  redis.call('ZADD', dkey(pr), due, id)
else
  redis.call('HSET', k, 'state', 'done', 'done_at', now, 'data', data)
  redis.call('EXPIRE', k, KEEP_DONE_S)
end
return 'ok'
