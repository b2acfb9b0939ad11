-- Change an agent's presence along the state machine.
-- ARGV: 4 agent id, 5 target (ready | not_ready | logged_out).
local id, target = ARGV[4], ARGV[5]
local a = akey(id)
local status = redis.call('HGET', a, 'status')
if not status then
  return {'err', 'not_found', 'agent ' .. id .. ' is not logged in'}
end
if status == 'logged_out' then
  if target == 'logged_out' then return {'ok', 'logged_out', ''} end
  return {'err', 'failed_precondition', 'agent ' .. id .. ' is logged out; log in first'}
end
if target == 'logged_out' then
  if redis.call('HLEN', hkey(id)) > 0 then
    return {'err', 'failed_precondition', 'agent ' .. id .. ' holds contacts; complete them first'}
  end
  set_presence(id, 'logged_out')
  redis.call('HDEL', a, 'on_duty_until')
  reindex(id)
  return {'ok', 'logged_out', ''}
end
if target == 'ready' then
  if status == 'ready' then return {'ok', 'ready', ''} end
  local call = make_ready(id)
  return {'ok', redis.call('HGET', a, 'status'), call or ''}
end
-- not_ready: no new contacts; contacts held are finished as usual.
set_presence(id, 'not_ready')
reindex(id)
return {'ok', 'not_ready', ''}
