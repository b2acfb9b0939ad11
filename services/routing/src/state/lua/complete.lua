-- Complete a contact: release its agent, learn its traits from CSAT, and
-- either start wrap-up or hand it the next queued contact.
-- ARGV: 4 call id, 5 agent id, 6 csat 0..5, 7 wrap-up '1'|'0'.
-- Returns {'ok'|'already', agent status, next call or '', learned traits}
-- followed by the agent's `agent_view` after the change, or {'err', kind,
-- message}.
local call, id, csat, wrap = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7] == '1'
local c = ckey(call)
local a = akey(id)
-- Every field of the contact this script reads, in one call (each
-- redis.call from Lua has a fixed cost); nothing below changes them before
-- they are used.
local v = redis.call('HMGET', c, 'ch', 'group', 'queue_wait_ms', 'attempt', 'empathy_need',
  'de_escalation_need', 'status', 'agent_id')
local call_status, holder = v[7], v[8]
if not call_status then
  return {'err', 'not_found', 'call ' .. call .. ' is unknown'}
end
local agent_status = redis.call('HGET', a, 'status')
if not agent_status then
  return {'err', 'not_found', 'agent ' .. id .. ' is not logged in'}
end
if call_status == 'completed' then
  if holder == id then return with_agent({'already', agent_status, '', ''}, id) end
  return {'err', 'failed_precondition', 'call ' .. call .. ' was completed by another agent'}
end
if call_status ~= 'offered' and call_status ~= 'connected' then
  return {'err', 'failed_precondition', 'call ' .. call .. ' is ' .. call_status}
end
if holder ~= id or not redis.call('HGET', hkey(id), call) then
  return {'err', 'failed_precondition', 'agent ' .. id .. ' does not hold call ' .. call}
end
if call_status == 'offered' then
  -- Completed without an explicit accept: the contact was answered.
  redis.call('ZREM', DUE, 'offer|' .. call .. '|' .. v[4])
  sl_add('answered', v[1], v[2], call, num(v[3]))
end
redis.call('HSET', c, 'status', 'completed', 'completed_ms', now)
untrack_live(call)
redis.call('EXPIRE', c, cfg.ttl)
release(id, call)
-- Traits are learned from satisfaction on the contacts that needed them —
-- never from handle time: an exponential moving average toward CSAT on a
-- 0..10 scale.
local learned = {}
if csat > 0 then
  local target = (csat - 1) * 2.5
  for _, t in ipairs({{'empathy_need', 'empathy', v[5]}, {'de_escalation_need', 'de_escalation', v[6]}}) do
    if t[3] == '1' then
      local old = num(redis.call('HGET', a, t[2]))
      local new = old + cfg.alpha * (target - old)
      redis.call('HSET', a, t[2], tostring(new))
      learned[#learned + 1] = t[2] .. '=' .. tostring(new)
    end
  end
end
local next_call = nil
if wrap and agent_status == 'ready' and num(redis.call('HGET', a, 'load')) == 0 then
  set_presence(id, 'wrap_up')
  redis.call('ZADD', DUE, now + cfg.wrap_ms, 'wrap|' .. id .. '|' .. now)
  reindex(id)
else
  next_call = fill(id)
end
return with_agent({'ok', redis.call('HGET', a, 'status'), next_call or '', table.concat(learned, ',')},
  id)
