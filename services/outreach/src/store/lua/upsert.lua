-- Writes planned or requested tasks for one customer.
-- ARGV[3] = customer, ARGV[4] = mode: 'add' (only these tasks), 'replan'
-- (these are the customer's whole policy plan: pending plan tasks not in
-- it are dropped) or 'erase' (drop every unfinished task; no tasks given).
-- ARGV[5] = n, then n × 7: id, due, prio, periodic, source, data, meta.
-- Returns {created, updated, removed}.
--
-- Rules that keep this idempotent and never cause a second call:
-- - a claimed or dispatched task is never touched (it is in flight);
-- - a pending task's due time only moves later (a check may have deferred
--   it to the next allowed moment; re-planning must not undo that);
-- - a finished periodic task is re-armed only for a later cycle (due after
--   it finished); a finished one-shot task (callback, soothing follow-up,
--   manual) is never planned again.
local cust = ARGV[3]
local mode = ARGV[4]
local n = tonumber(ARGV[5])
local created, updated, removed = 0, 0, 0
local keep = {}
for i = 0, n - 1 do
  local b = 6 + i * 7
  local id, due, pr = ARGV[b], tonumber(ARGV[b + 1]), clamp(ARGV[b + 2])
  local periodic, source, data, meta = ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  keep[id] = true
  local k = tkey(id)
  local v = redis.call('HMGET', k, 'state', 'due', 'prio', 'done_at', 'cycle')
  local st = v[1]
  if not st then
    redis.call('HSET', k, 'state', 'pending', 'due', due, 'prio', pr, 'fence', 0,
      'attempt', 0, 'cycle', 0, 'cust', cust, 'periodic', periodic,
      'source', source, 'data', data, 'meta', meta)
    redis.call('ZADD', dkey(pr), due, id)
    redis.call('SADD', ckey(cust), id)
    created = created + 1
  elseif st == 'pending' then
    local d = math.max(num(v[2]), due)
    local old = clamp(v[3])
    if old ~= pr then redis.call('ZREM', dkey(old), id) end
    redis.call('HSET', k, 'due', d, 'prio', pr, 'data', data, 'meta', meta)
    redis.call('ZADD', dkey(pr), d, id)
    updated = updated + 1
  elseif (st == 'done' or st == 'cancelled') and periodic == '1' and due > num(v[4]) then
    redis.call('PERSIST', k)
    redis.call('HSET', k, 'state', 'pending', 'due', due, 'prio', pr, 'attempt', 0,
      'cycle', num(v[5]) + 1, 'data', data, 'meta', meta, 'skip', '')
    redis.call('ZADD', dkey(pr), due, id)
    redis.call('SADD', ckey(cust), id)
    updated = updated + 1
  end
end
if mode == 'replan' or mode == 'erase' then
  for _, id in ipairs(redis.call('SMEMBERS', ckey(cust))) do
    if not keep[id] then
      local k = tkey(id)
      local v = redis.call('HMGET', k, 'state', 'source', 'prio')
      if not v[1] then
        redis.call('SREM', ckey(cust), id)
      elseif v[1] == 'pending' and (mode == 'erase' or v[2] == 'plan') then
        redis.call('ZREM', dkey(clamp(v[3])), id)
        redis.call('DEL', k)
        redis.call('SREM', ckey(cust), id)
        removed = removed + 1
      elseif mode == 'erase' and v[1] == 'claimed' then
        -- Its holder's dispatch will now fail the fence check.
        redis.call('ZREM', LEASES, id)
        redis.call('HSET', k, 'state', 'cancelled', 'done_at', now)
        redis.call('EXPIRE', k, KEEP_DONE_S)
        removed = removed + 1
      end
    end
  end
end
return {created, updated, removed}
