-- Process due timers: offer expiries, widening steps, retries after a
-- declined offer, wrap-up timeouts. Each timer is removed as it is handled
-- and re-checked against the current state, so any replica may sweep at any
-- time and a timer is acted on at most once.
-- ARGV: 4 limit. Returns {handled, expired, widened, assigned, wrapped}.
local due = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local expired, widened, assigned, wrapped = 0, 0, 0, 0
for _, member in ipairs(due) do
  redis.call('ZREM', DUE, member)
  local kind, id, n = string.match(member, '^(%a+)|([^|]+)|?(.*)$')
  if kind == 'offer' then
    local c = ckey(id)
    local v = redis.call('HMGET', c, 'status', 'attempt', 'agent_id')
    if v[1] == 'offered' and v[2] == n then
      local agent = v[3]
      expired = expired + 1
      if redis.call('HINCRBY', akey(agent), 'misses', 1) >= cfg.max_missed then
        set_presence(agent, 'not_ready')
      end
      if withdraw(id, agent) then assigned = assigned + 1 end
      fill(agent)
    end
  elseif kind == 'step' then
    local c = ckey(id)
    local v = redis.call('HMGET', c, 'status', 'step', 'steps')
    local step = tonumber(n)
    if v[1] == 'queued' and num(v[2]) == step - 1 then
      local i = 0
      for entry in string.gmatch(v[3] or '', '[^;]+') do
        i = i + 1
        if i == step then
          local group, min = string.match(entry, '^([^,]+),([^,]+),')
          dequeue(id)
          redis.call('HSET', c, 'group', group, 'min_score', min, 'step', step, 'widened_ms', now)
          enqueue(id)
          widened = widened + 1
          local skip = redis.call('HMGET', c, 'skip_agent', 'skip_until')
          local exclude = nil
          if num(skip[2]) > now then exclude = skip[1] end
          if offer_from_index(id, exclude) then
            assigned = assigned + 1
          else
            schedule_step(id, step)
          end
        end
      end
    end
  elseif kind == 'retry' then
    if redis.call('HGET', ckey(id), 'status') == 'queued' and offer_from_index(id, nil) then
      assigned = assigned + 1
    end
  elseif kind == 'wrap' then
    local v = redis.call('HMGET', akey(id), 'status', 'status_since')
    if v[1] == 'wrap_up' and v[2] == n then
      wrapped = wrapped + 1
      if make_ready(id) then assigned = assigned + 1 end
    end
  end
end
return {#due, expired, widened, assigned, wrapped}
