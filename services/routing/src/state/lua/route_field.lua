-- Reserve a customer's dedicated field manager for a new contact, if on
-- duty (heartbeat not lapsed), ready and free; plan a visit follow-up in the
-- same step. Writes nothing when the manager is unavailable.
-- ARGV: 4 call id, 5 channel, 6 manager id, 7 group, 8 visit window start
--       ms, 9 visit window end ms, 10 priority, then call field/value pairs.
local call, ch, fm, group = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local c = ckey(call)
local existing = redis.call('HGET', c, 'status')
if existing then return {'existing', existing} end
local v = redis.call('HMGET', akey(fm), 'status', 'field', 'on_duty_until', 'load')
if not v[1] or v[1] == 'logged_out' then return {'unavailable', 'not logged in'} end
if v[2] ~= '1' then return {'unavailable', 'not a field manager'} end
if num(v[3]) <= now then return {'unavailable', 'off duty (no heartbeat)'} end
if v[1] ~= 'ready' then return {'unavailable', (string.gsub(v[1], '_', ' '))} end
if num(v[4]) > 0 then return {'unavailable', 'busy with another contact'} end
if #ARGV >= 11 then redis.call('HSET', c, unpack(ARGV, 11)) end
redis.call('HSET', c, 'call_id', call, 'arrived_ms', now, 'ch', ch, 'group', group, 'min_score', 0,
  'steps', '', 'step', 0, 'status', 'new', 'attempt', 0)
redis.call('EXPIRE', c, cfg.ttl)
track_live(call)
local offer = reserve(fm, call)
local task = 'visit-' .. call
redis.call('HSET', tkey(task), 'task_id', task, 'kind', 'visit', 'call_id', call, 'agent_id', fm,
  'customer_id', redis.call('HGET', c, 'customer_id') or '', 'start_ms', ARGV[8], 'end_ms', ARGV[9],
  'priority', ARGV[10], 'skill', redis.call('HGET', c, 'skill') or '',
  'ivr_selection', redis.call('HGET', c, 'ivr_selection') or '', 'created_ms', now)
redis.call('ZADD', p .. 'tasks', ARGV[8], task)
redis.call('HSET', c, 'follow_up', task)
return {'assigned', fm, offer, task}
