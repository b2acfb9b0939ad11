-- Returns up to ARGV[3] tasks whose lease has expired to the due index:
-- their holder died or stalled. Their fencing token is now stale, so the
-- old holder can no longer dispatch or complete them. Returns the count.
local ids = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', LEASES, id)
  local k = tkey(id)
  local v = redis.call('HMGET', k, 'state', 'lease', 'due', 'prio')
  if v[1] == 'claimed' and num(v[2]) <= now then
    redis.call('HSET', k, 'state', 'pending', 'owner', '')
    redis.call('ZADD', dkey(clamp(v[4])), num(v[3]), id)
    n = n + 1
  end
end
return n
