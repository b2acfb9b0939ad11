-- Read the best idle candidates of a group (read-only).
-- KEYS: idle index of the group. ARGV: prefix, min score, limit.
-- Returns: total eligible, then id, score, idle_since for each candidate.
local p = ARGV[1]
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[3]))
local out = {tostring(redis.call('ZCOUNT', KEYS[1], ARGV[2], '+inf'))}
for i = 1, #ids, 2 do
  out[#out + 1] = ids[i]
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = redis.call('HGET', agent_key(p, ids[i]), 'idle_since') or '0'
end
return out
