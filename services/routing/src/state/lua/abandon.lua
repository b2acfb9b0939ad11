-- The caller hung up before being connected: the contact leaves its queue
-- (or its pending offer, whose agent is released) and counts as abandoned.
-- ARGV: 4 call id. Returns {'ok'|'already', wait ms} or an error.
local call = ARGV[4]
local c = ckey(call)
local v = redis.call('HMGET', c, 'status', 'agent_id', 'arrived_ms', 'ch', 'group', 'attempt',
  'queue_wait_ms')
if not v[1] then return {'err', 'not_found', 'call ' .. call .. ' is unknown'} end
if v[1] == 'abandoned' then return {'already', v[7] or '0'} end
if v[1] ~= 'queued' and v[1] ~= 'offered' then
  return {'err', 'failed_precondition', 'call ' .. call .. ' is ' .. v[1] .. ', not waiting'}
end
local wait = now - num(v[3])
if v[1] == 'queued' then
  dequeue(call)
else
  redis.call('ZREM', DUE, 'offer|' .. call .. '|' .. v[6])
  release(v[2], call)
  fill(v[2])
end
redis.call('HSET', c, 'status', 'abandoned', 'abandoned_ms', now, 'queue_wait_ms', wait)
untrack_live(call)
redis.call('EXPIRE', c, cfg.ttl)
sl_add('abandoned', v[4], v[5], call, wait)
return {'ok', tostring(wait)}
