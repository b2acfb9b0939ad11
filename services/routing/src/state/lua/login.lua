-- Log an agent in (or re-login with new attributes).
-- ARGV: 4 agent id, 5 encoded profile, 6 ready '1'|'0', 7 channels 'c,c',
--       8 capacities 'c:n,c:n', 9 field '1'|'0', 10 empathy, 11 de-escalation,
--       12 dialects 'a,b', 13 languages 'a,b', then group/score pairs.
local id = ARGV[4]
local a = akey(id)
if redis.call('HLEN', hkey(id)) > 0 then
  return {'err', 'failed_precondition', 'agent ' .. id .. ' holds contacts; complete them first'}
end
-- Leave every index of the old attributes before they are replaced.
set_presence(id, 'not_ready')
reindex(id)
redis.call('DEL', gkey(id))
for i = 14, #ARGV, 2 do
  redis.call('HSET', gkey(id), ARGV[i], ARGV[i + 1])
end
redis.call('HDEL', a, 'cap:1', 'cap:2', 'cap:3', 'cap:4', 'cap:5', 'cap:6', 'load:1', 'load:2',
  'load:3', 'load:4', 'load:5', 'load:6', 'on_duty_until')
local capsum = 0
for ch, n in string.gmatch(ARGV[8], '(%d+):(%d+)') do
  redis.call('HSET', a, 'cap:' .. ch, n)
  capsum = capsum + tonumber(n)
end
redis.call('HSET', a, 'profile', ARGV[5], 'chans', ARGV[7], 'capsum', capsum, 'field', ARGV[9],
  'dialects', ARGV[12], 'languages', ARGV[13], 'load', 0, 'misses', 0)
-- Learned traits survive a re-login; the login only seeds them.
redis.call('HSETNX', a, 'empathy', ARGV[10])
redis.call('HSETNX', a, 'de_escalation', ARGV[11])
local assigned = nil
if ARGV[6] == '1' then
  assigned = make_ready(id)
end
return {'ok', redis.call('HGET', a, 'status'), assigned or ''}
