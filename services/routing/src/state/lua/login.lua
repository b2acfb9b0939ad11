-- Log an agent in (or re-login with new attributes).
-- KEYS: agent hash, agent groups hash.
-- ARGV: prefix, agent id, encoded profile, now ms, ready '1'|'0', queue scan,
--       then group/score pairs.
local p, id, profile = ARGV[1], ARGV[2], ARGV[3]
local now, ready, scan = tonumber(ARGV[4]), ARGV[5] == '1', tonumber(ARGV[6])
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'reserved' or status == 'busy' then
  return {'err', 'failed_precondition',
    'agent ' .. id .. ' holds call ' .. redis.call('HGET', KEYS[1], 'call_id')}
end
unindex(p, id)
redis.call('DEL', KEYS[2])
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'profile', profile, 'status', 'not_ready', 'call_id', '',
  'status_since', now)
local assigned = nil
if ready then
  assigned = make_ready(p, id, now, scan)
end
return {'ok', redis.call('HGET', KEYS[1], 'status'), assigned or ''}
