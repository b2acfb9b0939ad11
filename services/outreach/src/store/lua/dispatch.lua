-- Publishes dial requests for claimed tasks, each exactly once: the
-- request is added to the dial stream in the same atomic step that checks
-- the claim (state, fencing token, unexpired lease) and marks the task
-- dispatched. A holder that was paused past its lease is refused here.
-- ARGV[3] = frequency cap (0 = none), ARGV[4] = cap window ms, ARGV[5] = n,
-- then n × 6: id, fence, capped (1|0), request bytes, agent, idempotency key.
-- Returns per task: the stream entry id, or 'stale', 'expired' or 'cap'.
local cap, window, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i = 0, n - 1 do
  local b = 6 + i * 6
  local id, f, capped, req, agent, idem =
    ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local k = tkey(id)
  local v = redis.call('HMGET', k, 'state', 'fence', 'lease', 'cust')
  local res
  if v[1] ~= 'claimed' or v[2] ~= f then
    res = 'stale'
  elseif num(v[3]) < now then
    res = 'expired'
  else
    local sk = skey(v[4])
    if capped == '1' and cap > 0 then
      redis.call('ZREMRANGEBYSCORE', sk, '-inf', now - window)
      if redis.call('ZCARD', sk) >= cap then res = 'cap' end
    end
    if not res then
      res = redis.call('XADD', DIAL, '*', 'task', id, 'fence', f, 'idem', idem, 'req', req)
      redis.call('HSET', k, 'state', 'dispatched', 'delivery', res, 'agent', agent,
        'dispatched_at', now, 'idem', idem)
      redis.call('ZREM', LEASES, id)
      redis.call('ZADD', SENT, now, id)
      if capped == '1' then
        redis.call('ZADD', sk, now, idem)
        redis.call('PEXPIRE', sk, window)
      end
    end
  end
  out[#out + 1] = res
end
return out
