package cluster

import "github.com/redis/go-redis/v9"

// scripts are the Lua scripts, one set per Client (go-redis caches each
// script's digest in it). Each runs atomically in Redis, with Redis' own
// clock, so processes on machines whose clocks disagree share one schedule.
type scripts struct {
	reserve, lower, lowered     *redis.Script
	claim, peek, renew, release *redis.Script
}

func newScripts() scripts {
	return scripts{
		reserve: redis.NewScript(reserveLua), lower: redis.NewScript(lowerLua), lowered: redis.NewScript(loweredLua),
		claim: redis.NewScript(claimLua), peek: redis.NewScript(peekLua),
		renew: redis.NewScript(renewLua), release: redis.NewScript(releaseLua),
	}
}

// reserveLua books a slot in a GCRA schedule. KEYS[1] holds the theoretical
// arrival time (TAT) of the next request in microseconds of Redis' clock.
// ARGV: emission interval (µs), burst, longest wait to book (µs).
// Reply: {1 if booked else 0, wait in µs}. A request may go burst-1
// intervals before the TAT; booking moves the TAT one interval on.
const reserveLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local wait = tat - tau - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[3]) then return {0, math.floor(wait)} end
local nxt = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.floor((nxt - now) / 1000) + 1000)
return {1, math.floor(wait)}
`

// The back-off is stored as "<rate> <ceiling> <recovery ms>" with a TTL of
// recovery ms: the rate in effect climbs linearly from rate to ceiling as
// the TTL runs out, and the key is gone once it is back at the ceiling.
const backoffLua = `
local function current(key)
  local v = redis.call('GET', key)
  if not v then return nil end
  local r, c, total = string.match(v, '^(%S+) (%S+) (%S+)$')
  local left = redis.call('PTTL', key)
  if not r or left <= 0 then return nil end
  r, c, total = tonumber(r), tonumber(c), tonumber(total)
  return c - (c - r) * math.min(left, total) / total
end
`

// lowerLua: ARGV rate, ceiling, recovery ms. Reply 1 if it lowered.
const lowerLua = backoffLua + `
local cur = current(KEYS[1])
if cur and cur <= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3], 'PX', ARGV[3])
return 1
`

// loweredLua replies the rate in effect as a string, or nil.
const loweredLua = backoffLua + `
local cur = current(KEYS[1])
if not cur then return false end
return string.format('%.3f', cur)
`

// Jobs keep three keys per batch: KEYS[1] the answer ("<status> <body>"),
// KEYS[2] the claim (the owner's id, expiring unless renewed), KEYS[3] a
// marker that another replica wants the answer kept.

// claimLua: ARGV owner, lease ms. Reply {"answer", value} for a kept 200
// answer, {"running", owner} for another owner's claim, else claims and
// replies {"claimed", ""}. A kept failure does not stop a new attempt.
const claimLua = `
local a = redis.call('GET', KEYS[1])
if a and string.sub(a, 1, 4) == '200 ' then return {'answer', a} end
local o = redis.call('GET', KEYS[2])
if o and o ~= ARGV[1] then return {'running', o} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'claimed', ''}
`

// peekLua: ARGV want ms (0: no marker). The marker is set first, so an
// owner finishing after this script sees it.
const peekLua = `
if tonumber(ARGV[1]) > 0 then redis.call('SET', KEYS[3], '1', 'PX', ARGV[1]) end
local a = redis.call('GET', KEYS[1])
if a then return {'answer', a} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'running', ''} end
return {'none', ''}
`

// renewLua: ARGV owner, lease ms. Extends the owner's claim, or makes it
// again if Redis lost it; reply 0 if another replica holds it.
const renewLua = `
local o = redis.call('GET', KEYS[1])
if o and o ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`

// releaseLua: ARGV owner, keep (1/0), ttl ms, value ("" for no answer).
// Keeps the answer when asked to or when another replica wants it, then
// drops the owner's claim. Reply 1 if it kept the answer.
const releaseLua = `
local kept = 0
if ARGV[4] ~= '' and (ARGV[2] == '1' or redis.call('EXISTS', KEYS[3]) == 1) then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
  redis.call('DEL', KEYS[3])
  kept = 1
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return kept
`
