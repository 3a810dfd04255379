"""The Lua scripts for operators and recovery: stats, the DLQ's redrive and purge,
re-creating the consumer groups after Redis lost its state, and registering again
the levels the registry lost."""

from __future__ import annotations

from ccdash.brokers.base import MAX_PRIORITY

# ARGV: P. Returns {ready, delayed, in flight, dead, counters (flat), pending per
# consumer (flat), now, oldest}: `oldest` is when the oldest ready message was
# published (Redis ms, -1: none ready): a returned message by its first entry's id
# (its ret: member starts with it), a new one by the level's first entry the group
# has not delivered yet. One seek per level: no scan.
STATS = r"""
local ready, pend, per, oldest = 0, 0, {}, -1
local function seen(ms)
  if ms and (oldest < 0 or ms < oldest) then oldest = ms end
end
for _, p in ipairs(levels(false)) do
  ready = ready + redis.call('ZCARD', P .. 'ret:' .. p)
  local first = redis.call('ZRANGE', P .. 'ret:' .. p, 0, 0)
  if first[1] then seen(tonumber(string.sub(first[1], 1, 16))) end
  local key = P .. 'q:' .. p
  local groups = redis.pcall('XINFO', 'GROUPS', key)
  if type(groups) == 'table' and not groups.err then
    for _, g in ipairs(groups) do
      local f = {}
      for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
      if f['name'] == G then
        local head = redis.call('XRANGE', key, '(' .. f['last-delivered-id'], '+', 'COUNT', 1)
        if head[1] then seen(tonumber(string.match(head[1][1], '^(%d+)-'))) end
      end
    end
  end
end
local ghosts = fmap(redis.call('HGETALL', P .. 'ghosts'))  -- acked, not yet trimmed
for _, p in ipairs(streams()) do
  local key = P .. 'q:' .. p
  local len = redis.pcall('XLEN', key)
  if type(len) == 'number' then  -- else no stream (a foreign writer's key): nothing of ours
    local s = redis.pcall('XPENDING', key, G)
    if type(s) == 'table' and s.err then return redis.error_reply(s.err) end
    local c = tonumber(s[1])
    ready = ready + math.max(0, len - c - tonumber(ghosts[p] or '0'))
    pend = pend + c
    if s[4] then
      for _, x in ipairs(s[4]) do per[x[1]] = (per[x[1]] or 0) + tonumber(x[2]) end
    end
  end
end
local flat = {}
for k, v in pairs(per) do flat[#flat + 1] = k; flat[#flat + 1] = v end
return {ready, redis.call('ZCARD', P .. 'delayed'), pend, redis.call('XLEN', P .. 'dead'),
  redis.call('HGETALL', P .. 'counters'), flat, NOW, oldest}
"""

# ARGV: P, limit, up-to id, then message ids (none: everything up to that id).
# mode 'r' puts dead messages back (attempts reset), 'p' deletes them.
_DLQ_BODY = r"""
local limit, upto = tonumber(ARGV[2]), ARGV[3]
local n = 0
local function take(id, f)
  redis.call('XDEL', P .. 'dead', id)
  redis.call('HDEL', P .. 'deadidx', f['m'])
  if MODE == 'r' then add_entry(f['p'], f['m'], f['t'], f['d']) end
  n = n + 1
end
local more = 0
if #ARGV > 3 then
  for i = 4, #ARGV do
    local id = redis.call('HGET', P .. 'deadidx', ARGV[i])
    if id then
      local got = redis.call('XRANGE', P .. 'dead', id, id)
      if #got > 0 then
        take(id, fmap(got[1][2]))
      else
        redis.call('HDEL', P .. 'deadidx', ARGV[i])
      end
    end
  end
else
  local got = redis.call('XRANGE', P .. 'dead', '-', upto, 'COUNT', limit)
  for _, e in ipairs(got) do take(e[1], fmap(e[2])) end
  if #got >= limit then more = 1 end
end
if n > 0 then incr(P .. 'counters', 'dlq_version', 1) end
return {n, more}
"""
REDRIVE = "local MODE = 'r'\n" + _DLQ_BODY
PURGE = "local MODE = 'p'\n" + _DLQ_BODY

# ARGV: P, priorities... Re-creates the group (and the level index) after Redis
# lost its state. Returns how many groups were created.
RECOVER = r"""
local made = 0
for i = 2, #ARGV do
  redis.call('ZADD', P .. 'prios', 'NX', ARGV[i], ARGV[i])
end
for _, p in ipairs(streams()) do
  local r = redis.pcall('XGROUP', 'CREATE', P .. 'q:' .. p, G, '0', 'MKSTREAM')
  if type(r) ~= 'table' or not r.err then
    made = made + 1
    redis.call('HDEL', P .. 'ghosts', p)  -- a new group: no entry of this stream is acked
  end
end
redis.pcall('XGROUP', 'CREATE', P .. 'wake', G, '$', 'MKSTREAM')
return made
"""

# ARGV: P, me, period ms. Finds the levels missing from the registry (an operator's
# cleanup, a foreign client or eviction took them out) whose streams still hold
# entries, or that have returned messages waiting, and registers them again: their
# messages would wait for the next publish to that level before anyone read them.
# Every priority's keys are named (no SCAN: the cost does not grow with the
# keyspace); at most one call per period does it across the fleet (`rescan`, SET
# NX). Returns the levels registered again.
REDISCOVER = r"""
if not redis.call('SET', P .. 'rescan', ARGV[2], 'NX', 'PX', ARGV[3]) then return {} end
local known, out = {}, {}
for _, p in ipairs(redis.call('ZRANGE', P .. 'prios', 0, -1)) do known[p] = true end
local function holds(key)  -- a stream with entries (a foreign key of another type: no)
  local r = redis.pcall('XLEN', key)
  return type(r) == 'number' and r > 0
end
for n = -@MAX@, @MAX@ do
  local p = tostring(n)
  if not known[p] and (redis.call('EXISTS', P .. 'ret:' .. p) == 1
      or holds(P .. 'q:' .. p) or holds(P .. 'q:r' .. p)) then
    level(p)
    out[#out + 1] = p
  end
end
return out
""".replace("@MAX@", str(MAX_PRIORITY))
