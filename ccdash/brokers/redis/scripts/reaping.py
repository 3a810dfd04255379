"""The Lua scripts that take work back from leases and workers: expired leases,
dead workers, a worker retiring, undecodable entries buried, a heartbeat taken over."""

from __future__ import annotations

# ARGV: P, me, vt ms, max attempts, count, heartbeat ttl ms. Expired leases:
# XAUTOCLAIM with min-idle = the visibility timeout (a cursor per stream, so each
# call looks at a bounded slice of the PEL), after XPENDING over the same slice to
# learn each entry's holder and delivery count for the history. Returns {ready,
# dead, held}: held 1 (nothing judged) right after an outage (see `held`).
REAP_EXPIRED = r"""
local me, vt, maxa, cnt = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local res = {0, 0, 0}
if held(tonumber(ARGV[6])) then res[3] = 1; return res end
for _, p in ipairs(streams()) do
  local key = P .. 'q:' .. p
  local cur = redis.call('HGET', P .. 'cursor', p) or '0-0'
  local owners = {}
  for _, r in ipairs(redis.call('XPENDING', key, G, 'IDLE', vt, cur, '+', cnt)) do
    owners[r[1]] = r
  end
  local ac = redis.call('XAUTOCLAIM', key, G, me, vt, cur, 'COUNT', cnt)
  for _, e in ipairs(ac[2]) do
    if e and e[1] then
      local r = owners[e[1]]
      local holder, count = '?', 1
      if r then holder = r[2]; count = tonumber(r[4]) end
      local out = finish(p, e[1], count, 'f', 'lease-expired', 'visibility timeout passed',
        holder, maxa, 0)
      if out == 'dead' then res[2] = res[2] + 1 elseif out ~= 'gone' then res[1] = res[1] + 1 end
    end
  end
  redis.call('HSET', P .. 'cursor', p, ac[1])
end
return res
"""

# ARGV: P, me, max attempts, count, heartbeat ttl ms. Workers registered but
# without a heartbeat key are dead: claim their pending entries at once (XCLAIM,
# min-idle 0) and return them to the queue as consumer-failed. A worker with
# nothing left is removed from the group and the registry. Returns {moved, dead,
# {gone workers}, held}: held 1 (nobody judged) right after an outage (see `held`).
REAP_DEAD = r"""
local me, maxa, cnt = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if held(tonumber(ARGV[5])) then return {0, 0, {}, 1} end
local moved, dead, gone = 0, 0, {}
local prios = streams()
for _, w in ipairs(redis.call('ZRANGE', P .. 'workers', 0, -1)) do
  if w ~= me and redis.call('EXISTS', P .. 'w:' .. w) == 0 then
    local left = false
    for _, p in ipairs(prios) do
      local key = P .. 'q:' .. p
      local pend = redis.call('XPENDING', key, G, '-', '+', cnt, w)
      if #pend > 0 then
        local ids, counts = {}, {}
        for _, r in ipairs(pend) do
          ids[#ids + 1] = r[1]
          counts[r[1]] = tonumber(r[4])
        end
        for _, e in ipairs(redis.call('XCLAIM', key, G, me, 0, unpack(ids))) do
          if e and e[1] then
            local out = finish(p, e[1], counts[e[1]], 'f', 'consumer-failed',
              'worker ' .. w .. ' stopped heartbeating', w, maxa, 0)
            if out == 'dead' then dead = dead + 1 elseif out ~= 'gone' then moved = moved + 1 end
          end
        end
        if #pend >= cnt then left = true end
      end
    end
    if not left then
      for _, p in ipairs(prios) do redis.pcall('XGROUP', 'DELCONSUMER', P .. 'q:' .. p, G, w) end
      redis.call('ZREM', P .. 'workers', w)
      gone[#gone + 1] = w
    end
  end
end
return {moved, dead, gone, 0}
"""

# ARGV: P, me. A worker leaving: whatever is still pending for it goes back
# (attempt given back), then it leaves the group and the registry.
RETIRE = r"""
local me = ARGV[2]
local back = 0
for _, p in ipairs(streams()) do
  local key = P .. 'q:' .. p
  for _, r in ipairs(redis.call('XPENDING', key, G, '-', '+', 10000, me)) do
    finish(p, r[1], tonumber(r[4]), 'g', 'released', '', me, 1000000, 0)
    back = back + 1
  end
  redis.pcall('XGROUP', 'DELCONSUMER', key, G, me)
end
redis.call('DEL', P .. 'w:' .. me)
redis.call('ZREM', P .. 'workers', me)
return back
"""

# ARGV: P, then (stream suffix, entry id, why) per entry. Entries this worker read
# but cannot decode (a foreign writer, corruption): out of the stream and into the
# DLQ at once (see `bury`). Returns how many.
BURY = r"""
local n = 0
for i = 2, #ARGV, 3 do
  local s, eid, why = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = P .. 'q:' .. s
  local got = redis.call('XRANGE', key, eid, eid)
  redis.call('XACK', key, G, eid)
  redis.call('XDEL', key, eid)
  if #got > 0 then
    bury(s, eid, got[1][2], why)
    n = n + 1
  end
end
return n
"""

# ARGV: P, worker, the heartbeat it must replace ('': none), the new one, ttl ms.
# A worker restarting under its name takes over the heartbeat of its previous
# process (judged stale by the caller) only if it is still exactly that one: a
# live worker's next beat would have changed it. Returns 1 if taken over.
TAKEOVER = r"""
local key = P .. 'w:' .. ARGV[2]
if (redis.call('GET', key) or '') ~= ARGV[3] then return 0 end
redis.call('SET', key, ARGV[4], 'PX', tonumber(ARGV[5]))
return 1
"""
