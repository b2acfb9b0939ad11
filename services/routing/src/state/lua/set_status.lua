-- Change an agent's status along the state machine.
-- KEYS: agent hash. ARGV: prefix, agent id, target, now ms, queue scan.
local p, id, target = ARGV[1], ARGV[2], ARGV[3]
local now, scan = tonumber(ARGV[4]), tonumber(ARGV[5])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'err', 'not_found', 'agent ' .. id .. ' is not logged in'}
end
if status == 'reserved' or status == 'busy' then
  return {'err', 'failed_precondition', 'agent ' .. id .. ' holds call '
    .. redis.call('HGET', KEYS[1], 'call_id') .. '; complete it first'}
end
if status == 'logged_out' then
  if target == 'logged_out' then
    return {'ok', 'logged_out', ''}
  end
  return {'err', 'failed_precondition', 'agent ' .. id .. ' is logged out; log in first'}
end
-- The agent is ready or not ready.
if target == 'ready' then
  if status == 'ready' then
    return {'ok', 'ready', ''}
  end
  local call = make_ready(p, id, now, scan)
  return {'ok', redis.call('HGET', KEYS[1], 'status'), call or ''}
end
unindex(p, id)
if target ~= status then
  redis.call('HSET', KEYS[1], 'status', target, 'status_since', now)
end
return {'ok', target, ''}
