-- A dialer acknowledges dial requests: ARGV[3] = group, then entry ids.
-- Acknowledged entries are deleted so the stream holds only requests still
-- in flight. Returns how many were pending.
local n = 0
for i = 4, #ARGV do
  local a = redis.call('XACK', DIAL, ARGV[3], ARGV[i])
  if a == 1 then
    redis.call('XDEL', DIAL, ARGV[i])
    n = n + 1
  end
end
return n
