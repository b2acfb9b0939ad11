-- A claimed task failed a check: back to the index at the next allowed
-- moment. ARGV[3] = id, ARGV[4] = fence, ARGV[5] = due, ARGV[6] = reason.
-- Returns 1, or 0 when the claim is no longer this holder's.
local id, f, due, reason = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local k = tkey(id)
local v = redis.call('HMGET', k, 'state', 'fence', 'prio')
if v[1] ~= 'claimed' or v[2] ~= f then return 0 end
redis.call('HSET', k, 'state', 'pending', 'due', due, 'skip', reason, 'owner', '')
redis.call('ZREM', LEASES, id)
redis.call('ZADD', dkey(clamp(v[3])), due, id)
return 1
