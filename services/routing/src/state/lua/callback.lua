-- The caller accepted a callback: the contact leaves its queue and a
-- callback task is persisted (due at the window's start) for the outreach
-- scheduler.
-- ARGV: 4 call id, 5 window start ms, 6 window end ms, 7 priority, 8 phone,
-- 9 '1' when the task is to be handed to the outreach scheduler (it then
-- waits in `handoff` until outreach has it).
local call = ARGV[4]
local c = ckey(call)
local v = redis.call('HMGET', c, 'status', 'arrived_ms')
if not v[1] then return {'err', 'not_found', 'call ' .. call .. ' is unknown'} end
local task = 'cb-' .. call
if v[1] == 'callback' then return {'already', task} end
if v[1] ~= 'queued' then
  return {'err', 'failed_precondition', 'call ' .. call .. ' is ' .. v[1] .. ', not queued'}
end
dequeue(call)
redis.call('HSET', c, 'status', 'callback', 'queue_wait_ms', now - num(v[2]), 'follow_up', task)
redis.call('EXPIRE', c, cfg.ttl)
untrack_live(call)
redis.call('HSET', tkey(task), 'task_id', task, 'kind', 'callback', 'call_id', call,
  'customer_id', redis.call('HGET', c, 'customer_id') or '', 'start_ms', ARGV[5], 'end_ms', ARGV[6],
  'priority', ARGV[7], 'phone', ARGV[8], 'skill', redis.call('HGET', c, 'skill') or '',
  'ivr_selection', redis.call('HGET', c, 'ivr_selection') or '', 'created_ms', now)
redis.call('ZADD', p .. 'tasks', ARGV[5], task)
if ARGV[9] == '1' then redis.call('ZADD', p .. 'handoff', now, task) end
return {'ok', task}
