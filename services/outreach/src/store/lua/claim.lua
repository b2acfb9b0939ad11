-- Claims up to ARGV[3] due tasks, highest priority first and oldest first
-- within a priority, for owner ARGV[4] with a lease of ARGV[5] ms. Each
-- claim gets a new fencing token from one counter, so a later claim of the
-- same task always carries a larger token than any earlier one.
-- Returns a list of {id, fence, data, meta, attempt, cycle, due}.
local left = tonumber(ARGV[3])
local owner = ARGV[4]
local lease = tonumber(ARGV[5])
local out = {}
for pr = MAXP, 0, -1 do
  if left <= 0 then break end
  local ids = redis.call('ZRANGEBYSCORE', dkey(pr), '-inf', now, 'LIMIT', 0, left)
  for _, id in ipairs(ids) do
    redis.call('ZREM', dkey(pr), id)
    local k = tkey(id)
    if redis.call('HGET', k, 'state') == 'pending' then
      local f = redis.call('INCR', FENCE)
      redis.call('HSET', k, 'state', 'claimed', 'fence', f, 'owner', owner, 'lease', now + lease)
      redis.call('ZADD', LEASES, now + lease, id)
      local v = redis.call('HMGET', k, 'data', 'meta', 'attempt', 'cycle', 'due')
      out[#out + 1] = {id, f, v[1], v[2], num(v[3]), num(v[4]), num(v[5])}
      left = left - 1
    end
  end
end
return out
