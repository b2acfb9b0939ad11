-- Queue statistics per (channel, group): waiting, oldest arrival, ready
-- agents, answered (and answered within the threshold) and abandoned over
-- the sliding window. Trims the windows as it reads them.
-- Returns: center ready count, then 7 fields per group: 'ch:group',
-- waiting, oldest arrival ms, ready, answered, fast, abandoned.
local out = {redis.call('HGET', COUNTS, 'ready') or '0'}
local groups = redis.call('SUNION', QUEUES, p .. 'slgroups')
for _, key in ipairs(groups) do
  local ch, group = string.match(key, '^(%d+):(.+)$')
  local q = qkey(ch, group)
  local oldest = redis.call('ZRANGE', q, 0, 0, 'WITHSCORES')
  local base = p .. 'sl:' .. ch .. ':' .. group
  local counts = {}
  for _, kind in ipairs({'answered', 'fast', 'abandoned'}) do
    redis.call('ZREMRANGEBYSCORE', base .. ':' .. kind, '-inf', now - cfg.window_ms)
    counts[kind] = redis.call('ZCARD', base .. ':' .. kind)
  end
  local waiting = redis.call('ZCARD', q)
  if counts.answered + counts.abandoned == 0 then
    redis.call('SREM', p .. 'slgroups', key)
  end
  if waiting > 0 or counts.answered + counts.abandoned > 0 then
    out[#out + 1] = key
    out[#out + 1] = tostring(waiting)
    out[#out + 1] = oldest[2] or '0'
    out[#out + 1] = tostring(redis.call('ZCARD', ikey(ch, group)))
    out[#out + 1] = tostring(counts.answered)
    out[#out + 1] = tostring(counts.fast)
    out[#out + 1] = tostring(counts.abandoned)
  end
end
return out
