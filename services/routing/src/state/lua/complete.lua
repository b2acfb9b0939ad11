-- Complete a contact: release its agent, who takes the next queued contact.
-- KEYS: call hash, agent hash. ARGV: prefix, call id, agent id, now ms,
-- queue scan, call ttl s.
local p, call_id, agent_id = ARGV[1], ARGV[2], ARGV[3]
local now, scan, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local call_status = redis.call('HGET', KEYS[1], 'status')
if not call_status then
  return {'err', 'not_found', 'call ' .. call_id .. ' is unknown'}
end
local agent_status = redis.call('HGET', KEYS[2], 'status')
if not agent_status then
  return {'err', 'not_found', 'agent ' .. agent_id .. ' is not logged in'}
end
local holder = redis.call('HGET', KEYS[1], 'agent_id')
if call_status == 'completed' then
  if holder == agent_id then
    return {'already', agent_status, ''}
  end
  return {'err', 'failed_precondition', 'call ' .. call_id .. ' was completed by another agent'}
end
if call_status ~= 'offered' and call_status ~= 'connected' then
  return {'err', 'failed_precondition', 'call ' .. call_id .. ' is ' .. call_status}
end
if holder ~= agent_id or redis.call('HGET', KEYS[2], 'call_id') ~= call_id then
  return {'err', 'failed_precondition', 'agent ' .. agent_id .. ' does not hold call ' .. call_id}
end
redis.call('HSET', KEYS[1], 'status', 'completed', 'completed_ms', now)
redis.call('EXPIRE', KEYS[1], ttl)
local next_call = make_ready(p, agent_id, now, scan)
return {'ok', redis.call('HGET', KEYS[2], 'status'), next_call or ''}
