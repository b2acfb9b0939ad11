-- Helpers shared by Rapport's routing scripts (prepended to each script).
-- Every key of a contact center lives under p = 'rapport:{<center>}:', so all
-- keys a script touches share one hash slot and the scripts run unchanged on
-- Redis Cluster. Scripts run atomically: no other command interleaves.

local function agent_key(p, id) return p .. 'agent:' .. id end
local function groups_key(p, id) return p .. 'agent:' .. id .. ':groups' end
local function call_key(p, id) return p .. 'call:' .. id end

-- Remove an agent from every idle index it is listed in.
local function unindex(p, id)
  local groups = redis.call('HKEYS', groups_key(p, id))
  for _, g in ipairs(groups) do
    redis.call('ZREM', p .. 'idle:' .. g, id)
  end
end

-- List an agent in the idle index of every group it satisfies.
local function index(p, id)
  local kv = redis.call('HGETALL', groups_key(p, id))
  for i = 1, #kv, 2 do
    redis.call('ZADD', p .. 'idle:' .. kv[i], kv[i + 1], id)
  end
end

-- Reserve an agent for a contact. Callers have checked the agent is ready.
local function reserve(p, agent_id, call_id, now)
  unindex(p, agent_id)
  redis.call('HSET', agent_key(p, agent_id), 'status', 'reserved', 'call_id', call_id,
    'status_since', now)
  local ck = call_key(p, call_id)
  local arrived = tonumber(redis.call('HGET', ck, 'arrived_ms')) or now
  redis.call('HSET', ck, 'status', 'offered', 'agent_id', agent_id, 'assigned_ms', now,
    'queue_wait_ms', now - arrived)
end

-- Hand an agent the longest-waiting queued contact it qualifies for, across
-- all its groups; inspects at most `scan` contacts per group.
local function take_queued(p, agent_id, now, scan)
  local kv = redis.call('HGETALL', groups_key(p, agent_id))
  local best_call, best_at, best_queue, best_group
  for i = 1, #kv, 2 do
    local group, score = kv[i], tonumber(kv[i + 1])
    local q = p .. 'queue:' .. group
    local entries = redis.call('ZRANGE', q, 0, scan - 1, 'WITHSCORES')
    for j = 1, #entries, 2 do
      local at = tonumber(entries[j + 1])
      if best_at ~= nil and at >= best_at then break end
      local min = redis.call('HGET', call_key(p, entries[j]), 'min_score')
      if not min then
        -- The contact's state expired; drop the stale queue entry.
        redis.call('ZREM', q, entries[j])
      elseif score >= tonumber(min) then
        best_call, best_at, best_queue, best_group = entries[j], at, q, group
        break
      end
    end
  end
  if best_call == nil then return nil end
  redis.call('ZREM', best_queue, best_call)
  if redis.call('ZCARD', best_queue) == 0 then
    redis.call('SREM', p .. 'queues', best_group)
  end
  reserve(p, agent_id, best_call, now)
  return best_call
end

-- Make an agent ready: it takes the oldest eligible queued contact at once,
-- or else joins the idle indexes.
local function make_ready(p, agent_id, now, scan)
  redis.call('HSET', agent_key(p, agent_id), 'status', 'ready', 'call_id', '',
    'status_since', now, 'idle_since', now)
  local call = take_queued(p, agent_id, now, scan)
  if call == nil then
    index(p, agent_id)
  end
  return call
end
