-- The outcome of handing a follow-up task to the outreach scheduler.
-- ARGV: 4 task id, 5 'done' | 'retry' | 'failed', 6 retry at ms, 7 reason.
-- done: outreach has the task; retry: try again at ARGV[6] (only while it
-- is still waiting); failed: outreach refused it for good (the reason is
-- kept on the task so ListFollowUps shows why).
local task = ARGV[4]
local action = ARGV[5]
local k = tkey(task)
if action == 'retry' then
  redis.call('ZADD', p .. 'handoff', 'XX', ARGV[6], task)
  return 1
end
local removed = redis.call('ZREM', p .. 'handoff', task)
if redis.call('EXISTS', k) == 1 then
  if action == 'done' then
    redis.call('HSET', k, 'handed_ms', now)
  else
    redis.call('HSET', k, 'handoff_error', ARGV[7])
  end
end
return removed
