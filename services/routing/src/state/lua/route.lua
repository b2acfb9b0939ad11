-- Reserve the best still-free candidate for a new contact, or queue it.
-- KEYS: call hash, idle index of the contact's group, queue of that group.
-- ARGV: prefix, call id, group, min score, now ms, call ttl s, n,
--       n ranked candidate ids, then call field/value pairs.
local p, call_id, group = ARGV[1], ARGV[2], ARGV[3]
local min, now, ttl, n = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
-- Repeating a call id returns the contact's current state (idempotent).
local existing = redis.call('HGET', KEYS[1], 'status')
if existing then
  return {'existing', existing}
end
for i = 8 + n, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'call_id', call_id, 'arrived_ms', now, 'group', group,
  'min_score', ARGV[4], 'status', 'new')
redis.call('EXPIRE', KEYS[1], ttl)
-- Candidates were read and ranked outside the script; any of them may have
-- been taken since, so each is re-checked here, atomically.
for i = 8, 7 + n do
  local id = ARGV[i]
  local s = redis.call('ZSCORE', KEYS[2], id)
  if s and tonumber(s) >= min and redis.call('HGET', agent_key(p, id), 'status') == 'ready' then
    reserve(p, id, call_id, now)
    return {'assigned', id, 'ranked'}
  end
end
-- All ranked candidates were taken: an agent that turned ready meanwhile
-- must not be left idle while this contact queues.
local top = redis.call('ZREVRANGEBYSCORE', KEYS[2], '+inf', min, 'LIMIT', 0, 1)
if top[1] then
  reserve(p, top[1], call_id, now)
  return {'assigned', top[1], 'index'}
end
redis.call('ZADD', KEYS[3], now, call_id)
redis.call('SADD', p .. 'queues', group)
redis.call('HSET', KEYS[1], 'status', 'queued')
return {'queued', tostring(redis.call('ZRANK', KEYS[3], call_id) + 1)}
