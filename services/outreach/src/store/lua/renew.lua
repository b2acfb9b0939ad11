-- Extends the leases of tasks still held: ARGV[3] = lease ms, then pairs
-- of id, fence. Returns the ids no longer held (lease lost, task taken).
local lease = tonumber(ARGV[3])
local lost = {}
for i = 4, #ARGV, 2 do
  local id, f = ARGV[i], ARGV[i + 1]
  local k = tkey(id)
  local v = redis.call('HMGET', k, 'state', 'fence', 'lease')
  if v[1] == 'claimed' and v[2] == f and num(v[3]) > now then
    redis.call('HSET', k, 'lease', now + lease)
    redis.call('ZADD', LEASES, now + lease, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
