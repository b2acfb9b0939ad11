-- Read the best idle candidates of a group on a channel (read-only).
-- KEYS: the idle index. ARGV: 4 min score, 5 limit, then extra ids to
-- consider even below the top (preferred agent, affinity).
-- Returns: total eligible, then one string per candidate, its 9 fields
-- joined by tabs: id, score, idle_since, empathy, de-escalation, load,
-- capacity sum, dialects, languages. One string rather than nine values:
-- parsing each reply value costs the caller more than splitting a string
-- (ids and lists never hold a tab).
local min, limit = ARGV[4], tonumber(ARGV[5])
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', min, 'WITHSCORES', 'LIMIT', 0, limit)
local out = {tostring(redis.call('ZCOUNT', KEYS[1], min, '+inf'))}
local seen = {}
local function add(id, score)
  seen[id] = true
  local v = redis.call('HMGET', akey(id), 'idle_since', 'empathy', 'de_escalation', 'load', 'capsum',
    'dialects', 'languages')
  local f = {id, score}
  for i = 1, 7 do f[i + 2] = v[i] or '' end
  out[#out + 1] = table.concat(f, '\t')
end
for i = 1, #ids, 2 do add(ids[i], ids[i + 1]) end
for i = 6, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    local s = redis.call('ZSCORE', KEYS[1], id)
    if s and tonumber(s) >= tonumber(min) then add(id, s) end
  end
end
return out
