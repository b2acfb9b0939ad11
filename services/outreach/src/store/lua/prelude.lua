-- Helpers shared by the outreach scheduler's scripts (prepended to each).
-- Every key lives under p = 'rapport:{out}:', one hash slot, so the scripts
-- run unchanged on Redis Cluster. Scripts run atomically: no other command
-- interleaves, which is what makes claims, fencing and dispatch exact.
--
-- Every script gets ARGV[1] = prefix and ARGV[2] = now (ms; the scheduler's
-- clock, injected so tests control time). Its own arguments start at
-- ARGV[3].
--
-- A task hash holds: state (pending|claimed|dispatched|done|cancelled),
-- due, prio, fence, owner, lease, attempt, cycle, cust, periodic (1|0),
-- source, data (the encoded CareTask), meta (JSON), skip (last reason a
-- check deferred it), delivery and agent (once dispatched), done_at.
local p = ARGV[1]
local now = tonumber(ARGV[2])
local LEASES = p .. 'leases'
local FENCE = p .. 'fence'
local DIAL = p .. 'dial'
-- Dispatched tasks by dispatch time, so calls whose outcome never came
-- are found without a scan.
local SENT = p .. 'dispatched'
local MAXP = 3
-- Finished tasks stay readable (and one-shot tasks stay finished, so a
-- rebuild does not plan them again) for this long.
local KEEP_DONE_S = 35 * 24 * 3600

local function tkey(id) return p .. 'task:' .. id end
local function dkey(pr) return p .. 'due:' .. pr end
local function ckey(c) return p .. 'cust:' .. c end
local function skey(c) return p .. 'sent:' .. c end
local function num(v) return tonumber(v) or 0 end
local function clamp(pr)
  pr = math.floor(num(pr))
  if pr < 0 then return 0 end
  if pr > MAXP then return MAXP end
  return pr
end
