-- Reserve the best still-free candidate for a new contact, or queue it.
-- ARGV: 4 call id, 5 channel, 6 group, 7 min score, 8 'queue'|'noqueue',
--       9 widening steps 'group,min,after_ms;…', 10 n, n ranked candidate
--       ids, then call field/value pairs.
-- Returns {'assigned', agent, 'ranked'|'index', offer id, agent profile},
-- {'queued', position}, {'none'}, {'existing', status} or, for an outbound
-- contact whose customer is in a live inbound one, {'busy', that call id}.
local call, ch, group, min = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local queue_ok, n = ARGV[8] == 'queue', tonumber(ARGV[10])
local c = ckey(call)
-- Repeating a call id returns the contact's current state (idempotent).
local existing = redis.call('HGET', c, 'status')
if existing then return {'existing', existing} end
local fields = {}
for i = 11 + n, #ARGV, 2 do fields[ARGV[i]] = ARGV[i + 1] end
-- An outbound call never rings a customer who is on an inbound contact;
-- checked here so no inbound contact can start between check and reserve.
if fields.direction == 'outbound' then
  local busy = live_contact(fields.customer_id)
  if busy then return {'busy', busy} end
end
-- Candidates were read and ranked outside the script; any of them may have
-- been taken since, so each is re-checked here, atomically.
local idle = ikey(ch, group)
local chosen, how = nil, 'ranked'
for i = 11, 10 + n do
  local s = redis.call('ZSCORE', idle, ARGV[i])
  if s and tonumber(s) >= min and available(ARGV[i], ch) then
    chosen = ARGV[i]
    break
  end
end
if chosen == nil then
  -- Every ranked candidate was taken: an agent that turned ready meanwhile
  -- must not be left idle while this contact queues.
  local top = redis.call('ZREVRANGEBYSCORE', idle, '+inf', min, 'LIMIT', 0, 1)
  if top[1] then chosen, how = top[1], 'index' end
end
if chosen == nil and not queue_ok then return {'none'} end
-- One HSET for every field (not one call per field: each redis.call
-- from Lua has a fixed cost).
if #ARGV >= 11 + n then redis.call('HSET', c, unpack(ARGV, 11 + n)) end
redis.call('HSET', c, 'call_id', call, 'arrived_ms', now, 'ch', ch, 'group', group, 'min_score',
  ARGV[7], 'steps', ARGV[9], 'step', 0, 'status', 'new', 'attempt', 0)
redis.call('EXPIRE', c, cfg.ttl)
track_live(call)
if chosen then
  local offer = reserve(chosen, call)
  -- The agent's profile rides along, so the caller needs no second read.
  return {'assigned', chosen, how, offer, redis.call('HGET', akey(chosen), 'profile') or ''}
end
enqueue(call)
schedule_step(call, 0)
return {'queued', tostring(redis.call('ZRANK', qkey(ch, group), call) + 1)}
