-- An agent's desktop answers an offer: accept or reject.
-- ARGV: 4 agent id, 5 offer id, 6 'accept'|'reject'.
-- Returns {'ok'|'already', call status, re-offered agent or ''} followed by
-- the agent's `agent_view` after the change (the reply needs no second
-- read), or {'err', kind, message}.
local id, offer, action = ARGV[4], ARGV[5], ARGV[6]
if not redis.call('HGET', akey(id), 'status') then
  return {'err', 'not_found', 'agent ' .. id .. ' is not logged in'}
end
local call, n = string.match(offer, '^(.+):(%d+)$')
if call == nil then return {'err', 'not_found', 'offer ' .. offer .. ' is unknown'} end
local c = ckey(call)
local v = redis.call('HMGET', c, 'status', 'agent_id', 'offer_id', 'ch', 'group', 'queue_wait_ms',
  'attempt')
if not v[1] or num(n) > num(v[7]) then
  return {'err', 'not_found', 'offer ' .. offer .. ' is unknown'}
end
if v[3] == offer and v[2] ~= id then
  return {'err', 'failed_precondition', 'offer ' .. offer .. ' was made to another agent'}
end
if v[3] == offer and v[1] == 'connected' and action == 'accept' then
  return with_agent({'already', 'connected', ''}, id)
end
if v[3] ~= offer or v[1] ~= 'offered' then
  return {'err', 'failed_precondition', 'offer ' .. offer .. ' expired or was withdrawn'}
end
if action == 'accept' then
  redis.call('HSET', c, 'status', 'connected', 'connected_ms', now)
  redis.call('ZREM', DUE, 'offer|' .. call .. '|' .. n)
  redis.call('HSET', akey(id), 'misses', 0)
  sl_add('answered', v[4], v[5], call, num(v[6]))
  return with_agent({'ok', 'connected', ''}, id)
end
local other = withdraw(call, id)
fill(id)
return with_agent({'ok', redis.call('HGET', c, 'status'), other or ''}, id)
