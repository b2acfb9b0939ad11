-- A field manager's presence heartbeat: on duty until now + TTL.
-- ARGV: 4 agent id, 5 ttl ms.
local id = ARGV[4]
local a = akey(id)
local v = redis.call('HMGET', a, 'status', 'field')
if not v[1] then return {'err', 'not_found', 'agent ' .. id .. ' is not logged in'} end
if v[2] ~= '1' then
  return {'err', 'failed_precondition', 'agent ' .. id .. ' is not a field manager (kind FIELD)'}
end
if v[1] == 'logged_out' then
  return {'err', 'failed_precondition', 'agent ' .. id .. ' is logged out; log in first'}
end
local until_ms = now + tonumber(ARGV[5])
redis.call('HSET', a, 'on_duty_until', until_ms)
return {'ok', tostring(until_ms)}
