-- Cancels a task that has not been dispatched. ARGV[3] = id, ARGV[4] =
-- reason. Returns 'ok', 'missing', or 'state:<state>' when it is already
-- dispatched or finished (a cancelled task answers 'ok' again).
local id, reason = ARGV[3], ARGV[4]
local k = tkey(id)
local v = redis.call('HMGET', k, 'state', 'prio')
if not v[1] then return 'missing' end
if v[1] == 'cancelled' then return 'ok' end
if v[1] ~= 'pending' and v[1] ~= 'claimed' then return 'state:' .. v[1] end
redis.call('ZREM', dkey(clamp(v[2])), id)
redis.call('ZREM', LEASES, id)
redis.call('HSET', k, 'state', 'cancelled', 'done_at', now, 'skip', reason)
redis.call('EXPIRE', k, KEEP_DONE_S)
return 'ok'
