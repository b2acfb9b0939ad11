-- Helpers shared by Rapport's routing scripts (prepended to each script).
-- Every key of a contact center lives under p = 'rapport:{<center>}:', so all
-- keys a script touches share one hash slot and the scripts run unchanged on
-- Redis Cluster. Scripts run atomically: no other command interleaves.
--
-- Every script gets ARGV[1] = prefix, ARGV[2] = now (ms, injected so tests
-- control time), ARGV[3] = the policy numbers below; its own arguments
-- start at ARGV[4].
local p = ARGV[1]
local now = tonumber(ARGV[2])
local cfg = {}
do
  -- One match instead of a gmatch loop: this runs on every script call.
  local f = {string.match(ARGV[3],
    '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*)$')}
  cfg.offer_ms = tonumber(f[1])
  cfg.scan = tonumber(f[2])
  cfg.max_missed = tonumber(f[3])
  cfg.wrap_ms = tonumber(f[4])
  cfg.voice_exclusive = f[5] == '1'
  cfg.window_ms = tonumber(f[6])
  cfg.threshold_ms = tonumber(f[7])
  cfg.ttl = tonumber(f[8])
  cfg.alpha = tonumber(f[9])
  cfg.busy_ttl = tonumber(f[10])
end
local VOICE = '1'
local DUE = p .. 'due'
local HISTORY = p .. 'history'
local COUNTS = p .. 'agent_counts'
local QUEUES = p .. 'queues'

local function num(v) return tonumber(v) or 0 end
local function akey(id) return p .. 'agent:' .. id end
local function gkey(id) return p .. 'agent:' .. id .. ':groups' end
-- Contacts an agent holds: call id -> channel.
local function hkey(id) return p .. 'agent:' .. id .. ':calls' end
local function ckey(id) return p .. 'call:' .. id end
local function qkey(ch, g) return p .. 'queue:' .. ch .. ':' .. g end
local function ikey(ch, g) return p .. 'idle:' .. ch .. ':' .. g end
local function tkey(id) return p .. 'task:' .. id end

-- The reservation history (reserve/release per agent), for audits and the
-- concurrency tests.
local function record(ev, agent, call)
  redis.call('XADD', HISTORY, 'MAXLEN', '~', 100000, '*', 'ev', ev, 'agent', agent, 'call', call,
    'at', now)
end

-- Presence: logged_out, not_ready, ready, wrap_up; counted per center.
local function set_presence(id, status)
  local a = akey(id)
  local old = redis.call('HGET', a, 'status')
  if old == status then return end
  if old then redis.call('HINCRBY', COUNTS, old, -1) end
  redis.call('HINCRBY', COUNTS, status, 1)
  if status == 'ready' then
    redis.call('HSET', a, 'status', status, 'status_since', now, 'idle_since', now)
  else
    redis.call('HSET', a, 'status', status, 'status_since', now)
  end
end

-- The rule of `available` over already-read fields: ready, a desk agent,
-- below its capacity on the channel, and voice exclusive of everything
-- else. `cap` and `load` are the channel's, `total` the agent's load over
-- all channels and `voice` its voice load.
local function can_take(status, field, cap, load, total, voice, ch)
  if status ~= 'ready' or field == '1' then return false end
  if num(load) >= num(cap) then return false end
  if cfg.voice_exclusive then
    if ch == VOICE then return num(total) == 0 end
    return num(voice) == 0
  end
  return true
end

-- Whether an agent can take one more contact on a channel.
local function available(id, ch)
  local v = redis.call('HMGET', akey(id), 'status', 'field', 'cap:' .. ch, 'load:' .. ch, 'load',
    'load:' .. VOICE)
  return can_take(v[1], v[2], v[3], v[4], v[5], v[6], ch)
end

-- Brings an agent's idle-index entries in line with `available`: listed in
-- idle:<ch>:<group> for every group it satisfies iff it can take a contact
-- on that channel. Every script that changes an agent ends here, twice per
-- contact, so it reads every channel's capacity and load in one HMGET
-- rather than one per channel (each redis.call from Lua has a fixed cost
-- of a few microseconds, and a blended agent has five channels). Channels
-- are the proto's numbers 1 to 6; any other falls back to `available`.
local function reindex(id)
  local v = redis.call('HMGET', akey(id), 'chans', 'status', 'field', 'load', 'cap:1', 'cap:2',
    'cap:3', 'cap:4', 'cap:5', 'cap:6', 'load:1', 'load:2', 'load:3', 'load:4', 'load:5', 'load:6')
  if not v[1] or v[1] == '' then return end
  local kv = redis.call('HGETALL', gkey(id))
  for ch in string.gmatch(v[1], '[^,]+') do
    local n = tonumber(ch)
    local on
    if n and n >= 1 and n <= 6 and ch == tostring(n) then
      -- v[5..10] are cap:1..6 and v[11..16] load:1..6; v[11] is load:1,
      -- the voice load, because VOICE is channel '1'.
      on = can_take(v[2], v[3], v[4 + n], v[10 + n], v[4], v[11], ch)
    else
      on = available(id, ch)
    end
    for i = 1, #kv, 2 do
      if on then
        redis.call('ZADD', ikey(ch, kv[i]), kv[i + 1], id)
      else
        redis.call('ZREM', ikey(ch, kv[i]), id)
      end
    end
  end
end

-- One agent's state as a flat reply: status, status_since, misses,
-- on_duty_until, empathy, de_escalation, encoded profile, then call id,
-- channel, status and offer id of every contact it holds; {} when unknown.
-- Scripts append it to their replies so callers need no second read.
local function agent_view(id)
  local v = redis.call('HMGET', akey(id), 'status', 'status_since', 'misses', 'on_duty_until',
    'empathy', 'de_escalation', 'profile')
  if not v[1] then return {} end
  local out = {}
  for i = 1, 7 do out[i] = v[i] or '' end
  local held = redis.call('HGETALL', hkey(id))
  for i = 1, #held, 2 do
    local c = redis.call('HMGET', ckey(held[i]), 'status', 'offer_id')
    out[#out + 1] = held[i]
    out[#out + 1] = held[i + 1]
    out[#out + 1] = c[1] or ''
    out[#out + 1] = c[2] or ''
  end
  return out
end

-- `reply` followed by the agent's view.
local function with_agent(reply, id)
  for _, v in ipairs(agent_view(id)) do reply[#reply + 1] = v end
  return reply
end

-- A customer's live inbound contacts (queued, offered or connected): a set
-- of call ids, so RouteOutbound can refuse to call someone who is on the
-- line. Entered when an inbound contact is placed, left when it completes,
-- is abandoned or turns into a callback. Members are re-checked against
-- the contact's status when read, and the key expires (cfg.busy_ttl, reset
-- at every entry) so neither a lost update nor a crash pins a customer.
-- Only ids of the validated shape become keys (customer ids come from
-- profile); anything else is simply not tracked.
local function lkey(customer)
  if not customer or not string.match(customer, '^[%w_.:%-]+$') then return nil end
  return p .. 'customer:' .. customer .. ':live'
end
local LIVE = {queued = true, offered = true, connected = true}

-- The first live inbound contact of a customer, if any (read-only).
local function live_contact(customer)
  local k = lkey(customer)
  if not k then return nil end
  for _, call in ipairs(redis.call('SMEMBERS', k)) do
    if LIVE[redis.call('HGET', ckey(call), 'status')] then return call end
  end
  return nil
end

local function track_live(call)
  local v = redis.call('HMGET', ckey(call), 'customer_id', 'direction')
  local k = lkey(v[1])
  if not k or v[2] == 'outbound' then return end
  -- Drop members whose contact ended without telling us (expired state).
  for _, other in ipairs(redis.call('SMEMBERS', k)) do
    if not LIVE[redis.call('HGET', ckey(other), 'status')] then redis.call('SREM', k, other) end
  end
  redis.call('SADD', k, call)
  redis.call('EXPIRE', k, cfg.busy_ttl)
end

local function untrack_live(call)
  local k = lkey(redis.call('HGET', ckey(call), 'customer_id'))
  if not k then return end
  redis.call('SREM', k, call)
  if redis.call('SCARD', k) == 0 then redis.call('DEL', k) end
end

local function sl_add(kind, ch, group, call, wait_ms)
  local base = p .. 'sl:' .. ch .. ':' .. group
  redis.call('ZADD', base .. ':' .. kind, now, call)
  redis.call('ZREMRANGEBYSCORE', base .. ':' .. kind, '-inf', now - cfg.window_ms)
  if kind == 'answered' and wait_ms <= cfg.threshold_ms then
    redis.call('ZADD', base .. ':fast', now, call)
    redis.call('ZREMRANGEBYSCORE', base .. ':fast', '-inf', now - cfg.window_ms)
  end
  redis.call('SADD', p .. 'slgroups', ch .. ':' .. group)
end

local function dequeue(call)
  local v = redis.call('HMGET', ckey(call), 'ch', 'group')
  local q = qkey(v[1], v[2])
  redis.call('ZREM', q, call)
  if redis.call('ZCARD', q) == 0 then redis.call('SREM', QUEUES, v[1] .. ':' .. v[2]) end
end

-- Queues a contact in its current group, at its arrival time (so a
-- re-routed contact keeps its place).
local function enqueue(call)
  local c = ckey(call)
  local v = redis.call('HMGET', c, 'ch', 'group', 'arrived_ms')
  redis.call('ZADD', qkey(v[1], v[2]), v[3], call)
  redis.call('SADD', QUEUES, v[1] .. ':' .. v[2])
  redis.call('HSET', c, 'status', 'queued', 'agent_id', '', 'offer_id', '')
end

-- Schedules the widening step after `step` (steps: 'group,min,after_ms;…').
local function schedule_step(call, step)
  local v = redis.call('HMGET', ckey(call), 'steps', 'arrived_ms')
  local i = 0
  for entry in string.gmatch(v[1] or '', '[^;]+') do
    i = i + 1
    if i == step + 1 then
      local _, _, after = string.match(entry, '^([^,]+),([^,]+),([^,]+)$')
      redis.call('ZADD', DUE, num(v[2]) + num(after), 'step|' .. call .. '|' .. i)
      return
    end
  end
end

-- Reserves an agent for a contact: the agent's load grows, it leaves the
-- indexes of channels it is now full on, and an offer with a deadline is
-- due. Callers have checked availability.
local function reserve(id, call)
  local c = ckey(call)
  local a = akey(id)
  local cv = redis.call('HMGET', c, 'ch', 'arrived_ms')
  local ch = cv[1] or VOICE
  redis.call('HSET', hkey(id), call, ch)
  redis.call('HINCRBY', a, 'load:' .. ch, 1)
  if redis.call('HINCRBY', a, 'load', 1) == 1 then redis.call('HINCRBY', COUNTS, 'holding', 1) end
  reindex(id)
  local n = redis.call('HINCRBY', c, 'attempt', 1)
  local offer = call .. ':' .. n
  redis.call('HSET', c, 'status', 'offered', 'agent_id', id, 'offer_id', offer, 'offered_ms', now,
    'offer_expires_ms', now + cfg.offer_ms, 'queue_wait_ms', now - num(cv[2]))
  redis.call('ZADD', DUE, now + cfg.offer_ms, 'offer|' .. call .. '|' .. n)
  record('reserve', id, call)
  return offer
end

-- Releases a contact an agent holds. Returns false if it did not hold it.
-- The caller decides what the agent does next (fill or wrap-up).
local function release(id, call)
  local a = akey(id)
  local ch = redis.call('HGET', hkey(id), call)
  if not ch then return false end
  redis.call('HDEL', hkey(id), call)
  redis.call('HINCRBY', a, 'load:' .. ch, -1)
  if redis.call('HINCRBY', a, 'load', -1) <= 0 then
    redis.call('HSET', a, 'load', 0, 'idle_since', now)
    redis.call('HINCRBY', COUNTS, 'holding', -1)
  end
  record('release', id, call)
  return true
end

-- The longest-waiting queued contact an agent qualifies for, across its
-- groups and the channels it has room on; inspects at most cfg.scan
-- contacts per queue. Reserves it and returns its id.
local function take_queued(id)
  local a = akey(id)
  local v = redis.call('HMGET', a, 'status', 'field', 'chans')
  if v[1] ~= 'ready' or v[2] == '1' then return nil end
  -- Only queues listed in QUEUES (a superset of the non-empty ones) can
  -- hold a contact: most of the time none does, and an agent belongs to
  -- channels × groups queues, so this spares a read per queue.
  local waiting = redis.call('SMEMBERS', QUEUES)
  if #waiting == 0 then return nil end
  local listed = {}
  for _, w in ipairs(waiting) do listed[w] = true end
  local kv = redis.call('HGETALL', gkey(id))
  local best, best_at
  for ch in string.gmatch(v[3] or '', '[^,]+') do
    local any = false
    for i = 1, #kv, 2 do
      if listed[ch .. ':' .. kv[i]] then any = true break end
    end
    if any and available(id, ch) then
      for i = 1, #kv, 2 do
        local score = tonumber(kv[i + 1])
        local q = qkey(ch, kv[i])
        local entries = {}
        if listed[ch .. ':' .. kv[i]] then
          entries = redis.call('ZRANGE', q, 0, cfg.scan - 1, 'WITHSCORES')
        end
        for j = 1, #entries, 2 do
          local at = tonumber(entries[j + 1])
          if best_at ~= nil and at >= best_at then break end
          local c = redis.call('HMGET', ckey(entries[j]), 'min_score', 'skip_agent', 'skip_until')
          if not c[1] then
            -- The contact's state expired; drop the stale queue entry.
            redis.call('ZREM', q, entries[j])
          elseif score >= tonumber(c[1]) and not (c[2] == id and num(c[3]) > now) then
            best, best_at = entries[j], at
            break
          end
        end
      end
    end
  end
  if best == nil then return nil end
  dequeue(best)
  reserve(id, best)
  return best
end

-- Fills an agent's free capacity from the queues; returns the first
-- contact taken, if any.
local function fill(id)
  local first
  for _ = 1, 50 do
    local call = take_queued(id)
    if call == nil then break end
    first = first or call
  end
  reindex(id)
  return first
end

local function make_ready(id)
  set_presence(id, 'ready')
  redis.call('HSET', akey(id), 'misses', 0)
  return fill(id)
end

-- Offers a queued contact to the best free agent of its current group
-- (other than `exclude`); returns the agent id.
local function offer_from_index(call, exclude)
  local v = redis.call('HMGET', ckey(call), 'ch', 'group', 'min_score')
  local top = redis.call('ZREVRANGEBYSCORE', ikey(v[1], v[2]), '+inf', v[3], 'LIMIT', 0, 3)
  for _, id in ipairs(top) do
    if id ~= exclude and available(id, v[1]) then
      dequeue(call)
      reserve(id, call)
      return id
    end
  end
  return nil
end

-- An offer that ends without acceptance (expired or rejected): the agent is
-- released, the contact goes back to its place in the queue and is offered
-- to the best other free agent; the same agent may take it again after one
-- offer timeout.
local function withdraw(call, id)
  local c = ckey(call)
  release(id, call)
  redis.call('ZREM', DUE, 'offer|' .. call .. '|' .. redis.call('HGET', c, 'attempt'))
  redis.call('HSET', c, 'skip_agent', id, 'skip_until', now + cfg.offer_ms)
  enqueue(call)
  local other = offer_from_index(call, id)
  if other == nil then
    redis.call('ZADD', DUE, now + cfg.offer_ms, 'retry|' .. call)
    schedule_step(call, num(redis.call('HGET', c, 'step')))
  end
  return other
end
