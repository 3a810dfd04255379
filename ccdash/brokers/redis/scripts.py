"""The Lua scripts of the Redis broker: each state change is one atomic script.

Model (see keys.Keys for the names):
  ready    an entry of its priority's stream not yet delivered to the group;
  leased   an entry pending (in the group's PEL) for the worker that read it;
           its idle time is the lease clock (XCLAIM ... JUSTID extends it);
  delayed  a hash `dl:<id>` plus a member of the `delayed` ZSET (due, Redis ms);
  dead     an entry of the `dead` stream (`deadidx` maps message id -> entry);
  acked    gone: XACK + XDEL.
A message that comes back (released, retried, expired, its worker died) keeps
its place: it waits in its level's `ret:<prio>` ZSET (members sort by its first
entry's id, `o`) with its fields in a hash `rt:<id>`, and a fetch moves it to
the level's returned stream `q:r<prio>` (read in the same script, so that stream
never holds unread entries) before reading new entries of that level: returned
messages were read before every unread entry of their level, so they go first.
A returned entry carries `a` (attempts used), `h` (its failure history, JSON)
and `o`. Attempt = a + the entry's delivery count. Scripts name a stream by its
suffix: `<prio>` (new entries) or `r<prio>` (returned ones). A `wake` stream
wakes readers parked in XREADGROUP BLOCK when something comes back.

Every script takes the key prefix as ARGV[1] and reads Redis TIME, so stored
times are the server's wall clock, the same for every host.
"""

from __future__ import annotations

import hashlib

from ccdash.brokers.base import RAW_LIMIT

_PRELUDE = r"""
local P = ARGV[1]
local G = 'ccdash'
local RAW = @RAW_LIMIT@  -- bytes of an undecodable entry kept in its dead letter
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)

local function fmap(f)
  local m = {}
  for i = 1, #f, 2 do m[f[i]] = f[i + 1] end
  return m
end

local LEVELS = {}  -- levels this script call has made sure of
local function level(prio)
  local key = LEVELS[prio]
  if key then return key end
  key = P .. 'q:' .. prio
  if redis.call('ZADD', P .. 'prios', 'NX', prio, prio) == 1 then
    redis.pcall('XGROUP', 'CREATE', key, G, '0', 'MKSTREAM')
    redis.pcall('XGROUP', 'CREATE', P .. 'q:r' .. prio, G, '0', 'MKSTREAM')
    redis.pcall('XGROUP', 'CREATE', P .. 'wake', G, '$', 'MKSTREAM')
  end
  LEVELS[prio] = key
  return key
end

-- A stream suffix ('<prio>' or 'r<prio>') -> its priority.
local function prio_of(s)
  if string.sub(s, 1, 1) == 'r' then return string.sub(s, 2) end
  return s
end

-- Every level's two streams, as suffixes.
local function streams()
  local out = {}
  for _, p in ipairs(redis.call('ZRANGE', P .. 'prios', 0, -1)) do
    out[#out + 1] = p
    out[#out + 1] = 'r' .. p
  end
  return out
end

-- A stream id as a fixed-width string that sorts like the id.
local function order_key(eid)
  local ms, seq = string.match(eid, '^(%d+)-(%d+)$')
  return string.rep('0', 16 - #ms) .. ms .. '-' .. string.rep('0', 12 - #seq) .. seq
end

-- A message comes back ready: it waits in its level's ZSET in its original
-- order `o` (see FETCH); one wake entry unparks a reader blocked in Redis.
local function give_back(prio, o, m, t, d, a, h)
  level(prio)
  redis.call('HSET', P .. 'rt:' .. m, 'p', prio, 'o', o, 'm', m, 't', t, 'd', d, 'a', a,
    'h', h or '')
  redis.call('ZADD', P .. 'ret:' .. prio, 0, o .. '|' .. m)
  redis.call('XADD', P .. 'wake', 'MAXLEN', '~', 64, '*', 'w', '1')
end

local function add_entry(prio, m, t, d, a, h)
  local key = level(prio)
  if h ~= nil and h ~= false and h ~= '' then
    return redis.call('XADD', key, '*', 'm', m, 't', t, 'd', d, 'a', a, 'h', h)
  end
  return redis.call('XADD', key, '*', 'm', m, 't', t, 'd', d, 'a', a)
end

local function history(h, c, n, o, e)
  local list = {}
  if h ~= nil and h ~= '' then
    local ok, old = pcall(cjson.decode, h)  -- a history we did not write starts afresh
    if ok and type(old) == 'table' then list = old end
  end
  list[#list + 1] = {NOW, c, n, o, e}
  while #list > 20 do table.remove(list, 1) end
  return cjson.encode(list)
end

-- An entry whose fields `f` (raw, as XRANGE gives them) ccdash cannot read: into
-- the DLQ as 'undecodable', its fields kept as raw bytes (`k=v` lines, at most
-- RAW bytes). Its id is its own when plain ASCII, else `undecodable-<entry id>`.
-- The caller has taken it out of its stream.
local function bury(s, eid, f, why)
  local parts, size, m = {}, 0, nil
  for j = 1, #f, 2 do
    if f[j] == 'm' and string.match(f[j + 1] or '', '^[%w%-%._:]+$') then m = f[j + 1] end
    if size < RAW then
      parts[#parts + 1] = string.sub(f[j] .. '=' .. (f[j + 1] or ''), 1, RAW - size)
      size = size + #parts[#parts] + 1
    end
  end
  m = m or ('undecodable-' .. eid)
  local id = redis.call('XADD', P .. 'dead', '*', 'm', m, 'p', prio_of(s), 't', NOW,
    'd', 'b' .. string.sub(table.concat(parts, '\n'), 1, RAW), 'n', 1, 'r', 'undecodable',
    'e', why, 'at', NOW)
  redis.call('HSET', P .. 'deadidx', m, id)
  redis.call('HINCRBY', P .. 'counters', 'dead_lettered', 1)
  redis.call('HINCRBY', P .. 'counters', 'dlq_version', 1)
end

-- Is the entry pending for `me`, delivered `count` times, idle under `vt` ms?
local function owned(key, eid, me, count, vt)
  local r = redis.call('XPENDING', key, G, eid, eid, 1, me)[1]
  if r == nil then return false end
  if count > 0 and tonumber(r[4]) ~= count then return false end
  if vt > 0 and tonumber(r[3]) >= vt then return false end
  return true
end

-- Redis's own view of an outage. Every presence tick (reap_dead, reap_expired) of
-- every worker stamps `tick`; ticks come every third of a heartbeat TTL, so a gap
-- over half a TTL means nobody could beat: Redis was paused or restarted, or its
-- clock jumped. Heartbeats lapsed through no fault of their workers, and idle
-- times grew: judging is held for one TTL (`hold`), fleet-wide, so every worker
-- beats again before anyone is declared dead. Returns true while held.
local function held(ttl)
  local last = tonumber(redis.call('GET', P .. 'tick') or '0')
  redis.call('SET', P .. 'tick', NOW)
  local hold = tonumber(redis.call('GET', P .. 'hold') or '0')
  if last > 0 and NOW - last > ttl / 2 then
    hold = NOW + ttl
    redis.call('SET', P .. 'hold', hold, 'PX', ttl)
  end
  return NOW < hold
end

-- Which of `ids` (entries of stream `key`, delivered counts[j] times) are pending
-- for `me` and idle under `vt` ms: one XPENDING over the ids' range (they were read
-- together, so the range holds little else of ours), per-id lookups only if that
-- range lists more of ours than it returned. Returns a list of booleans.
local function ours(key, ids, counts, me, vt)
  local lo, lo_ms, lo_seq, hi, hi_ms, hi_seq
  for _, id in ipairs(ids) do
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    ms, seq = tonumber(ms), tonumber(seq)
    if not lo or ms < lo_ms or (ms == lo_ms and seq < lo_seq) then
      lo, lo_ms, lo_seq = id, ms, seq
    end
    if not hi or ms > hi_ms or (ms == hi_ms and seq > hi_seq) then
      hi, hi_ms, hi_seq = id, ms, seq
    end
  end
  local mine, limit = {}, #ids * 2 + 64
  local rows = redis.call('XPENDING', key, G, lo, hi, limit, me)
  for _, r in ipairs(rows) do
    if tonumber(r[3]) < vt then mine[r[1]] = tonumber(r[4]) end
  end
  local full = #rows >= limit
  local out = {}
  for j, id in ipairs(ids) do
    local held = mine[id] == counts[j]
    if not held and full then held = owned(key, id, me, counts[j], vt) end
    out[j] = held
  end
  return out
end

-- Run `cmd` (a table of leading arguments) with `ids` appended, 1,000 at a time.
local function with_ids(cmd, ids, tail)
  for s = 1, #ids, 1000 do
    local c = {unpack(cmd)}
    for k = s, math.min(s + 999, #ids) do c[#c + 1] = ids[k] end
    for _, t in ipairs(tail or {}) do c[#c + 1] = t end
    redis.call(unpack(c))  -- unpack last: Lua keeps all its values only there
  end
end

-- End one pending delivery without an ack. mode 'g' gives the attempt back;
-- 'f' records failure `o` and dead-letters at the last attempt.
local function finish(s, eid, count, mode, o, e, holder, maxa, delay)
  local key = P .. 'q:' .. s
  local prio = prio_of(s)
  local got = redis.call('XRANGE', key, eid, eid)
  redis.call('XACK', key, G, eid)
  redis.call('XDEL', key, eid)
  if #got == 0 then return 'gone' end
  local f = fmap(got[1][2])
  if not f['m'] or not f['d'] or not tonumber(f['a'] or '0') then  -- a foreign writer's
    bury(s, eid, got[1][2], 'entry without a message id, a body or numeric attempts')
    return 'dead'
  end
  local order = f['o'] or order_key(eid)
  local attempt = tonumber(f['a'] or '0') + count
  local h = f['h'] or ''
  local a = attempt
  if mode == 'g' then
    a = attempt - 1
  else
    h = history(h, holder, attempt, o, e)
    if attempt >= maxa then
      local id = redis.call('XADD', P .. 'dead', '*', 'm', f['m'], 'p', prio, 't', f['t'],
        'd', f['d'], 'n', attempt, 'r', o, 'e', e, 'h', h, 'at', NOW)
      redis.call('HSET', P .. 'deadidx', f['m'], id)
      redis.call('HINCRBY', P .. 'counters', 'dead_lettered', 1)
      redis.call('HINCRBY', P .. 'counters', 'dlq_version', 1)
      return 'dead'
    end
    redis.call('HINCRBY', P .. 'counters', 'redelivered', 1)
  end
  if delay > 0 then
    local k = P .. 'dl:' .. f['m']
    redis.call('HSET', k, 'p', prio, 'o', order, 'm', f['m'], 't', f['t'], 'd', f['d'],
      'a', a, 'h', h)
    redis.call('ZADD', P .. 'delayed', NOW + delay, f['m'])
    return 'delayed'
  end
  give_back(prio, order, f['m'], f['t'], f['d'], a, h)
  return 'ready'
end
"""

# ARGV: P, token, dedup window ms, then (priority, id, data, dedup id or '') per message.
# Returns {} when the batch had no dedup ids, else the id each publish resolved to.
PUBLISH = r"""
local tok = P .. 'pub:' .. ARGV[2]
local prev = redis.call('GET', tok)
if prev then
  if prev == '' then return {} end
  return cjson.decode(prev)
end
local window = tonumber(ARGV[3])
local out, added, dedup = {}, 0, false
for i = 4, #ARGV, 4 do
  local m, dd = ARGV[i + 1], ARGV[i + 3]
  local mid = m
  if dd ~= '' then
    dedup = true
    local k = P .. 'dedup:' .. dd
    if not redis.call('SET', k, m, 'NX', 'PX', window) then mid = redis.call('GET', k) or m end
  end
  if mid == m then
    add_entry(ARGV[i], m, NOW, ARGV[i + 2], 0, nil)
    added = added + 1
  end
  out[#out + 1] = mid
end
if added > 0 then redis.call('HINCRBY', P .. 'counters', 'published', added) end
if dedup then
  redis.call('SET', tok, cjson.encode(out), 'EX', 600)
  return out
end
redis.call('SET', tok, '', 'EX', 600)
return {}
"""

# ARGV: P, me, n, promote limit. Moves due retries back, then reads up to n
# entries, highest priority first; within a level, returned messages (in their
# original order) before new ones. Returns {now, next due or -1, priorities,
# stream suffix, entries, stream suffix, entries, ...}.
FETCH = r"""
local me, n = ARGV[2], tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[4]))
for _, m in ipairs(due) do
  local k = P .. 'dl:' .. m
  local f = fmap(redis.call('HGETALL', k))
  if f['m'] then give_back(f['p'], f['o'] or '', f['m'], f['t'], f['d'], f['a'], f['h']) end
  redis.call('DEL', k)
  redis.call('ZREM', P .. 'delayed', m)
end
local nxt = redis.call('ZRANGE', P .. 'delayed', 0, 0, 'WITHSCORES')
local prios = redis.call('ZREVRANGE', P .. 'prios', 0, -1)
local out = {NOW, -1, prios}
if #nxt > 0 then out[2] = tonumber(nxt[2]) end
local function read(s, count)
  local r = redis.call('XREADGROUP', 'GROUP', G, me, 'COUNT', count, 'STREAMS', P .. 'q:' .. s, '>')
  if r and r[1] and #r[1][2] > 0 then
    out[#out + 1] = s
    out[#out + 1] = r[1][2]
    n = n - #r[1][2]
  end
end
for _, p in ipairs(prios) do
  if n <= 0 then break end
  local rz = P .. 'ret:' .. p
  local back = redis.call('ZRANGE', rz, 0, n - 1)
  if #back > 0 then
    local rkey = P .. 'q:r' .. p
    for _, member in ipairs(back) do
      local m = string.sub(member, string.find(member, '|', 1, true) + 1)
      local k = P .. 'rt:' .. m
      local f = fmap(redis.call('HGETALL', k))
      redis.call('DEL', k)
      if f['m'] then
        if f['h'] ~= nil and f['h'] ~= '' then
          redis.call('XADD', rkey, '*', 'm', f['m'], 't', f['t'], 'd', f['d'], 'a', f['a'],
            'o', f['o'], 'h', f['h'])
        else
          redis.call('XADD', rkey, '*', 'm', f['m'], 't', f['t'], 'd', f['d'], 'a', f['a'],
            'o', f['o'])
        end
      end
    end
    redis.call('ZREM', rz, unpack(back))
    read('r' .. p, #back)
  end
  if n > 0 then read(p, n) end
end
return out
"""

# ARGV: P, me, vt ms, then (stream suffix, entry id, delivery count) per ack.
# Acks only entries still pending for `me` with that count and within the lease (see
# `ours`: one XPENDING over each stream's acked range, not a scan of all we hold),
# then one XACK, one XDEL and one counter update per batch; returns the 1-based
# positions of the rejected ones.
ACK = r"""
local me, vt = ARGV[2], tonumber(ARGV[3])
local bad, nok, groups, order = {}, 0, {}, {}
for i = 4, #ARGV, 3 do
  local g = groups[ARGV[i]]
  if not g then
    g = {key = P .. 'q:' .. ARGV[i], ids = {}, counts = {}, at = {}}
    groups[ARGV[i]] = g
    order[#order + 1] = g
  end
  g.ids[#g.ids + 1] = ARGV[i + 1]
  g.counts[#g.counts + 1] = tonumber(ARGV[i + 2])
  g.at[#g.at + 1] = (i - 1) / 3
end
for _, g in ipairs(order) do
  local held, ok = ours(g.key, g.ids, g.counts, me, vt), {}
  for j, id in ipairs(g.ids) do
    if held[j] then ok[#ok + 1] = id else bad[#bad + 1] = g.at[j] end
  end
  with_ids({'XACK', g.key, G}, ok)
  with_ids({'XDEL', g.key}, ok)
  nok = nok + #ok
end
if nok > 0 then redis.call('HINCRBY', P .. 'counters', 'acked', nok) end
return bad
"""

# ARGV: P, me, vt ms (0: no lease check), max attempts, then (stream suffix, entry id,
# count, mode, reason, error, holder, delay ms) per item. Returns, per item,
# 'ready' | 'delayed' | 'dead' | 'gone' | 'rejected'.
END = r"""
local me, vt, maxa = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV, 8 do
  local prio, eid, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if owned(P .. 'q:' .. prio, eid, me, count, vt) then
    out[#out + 1] = finish(prio, eid, count, ARGV[i + 3], ARGV[i + 4], ARGV[i + 5],
      ARGV[i + 6], maxa, tonumber(ARGV[i + 7]))
  else
    out[#out + 1] = 'rejected'
  end
end
return out
"""

# ARGV: P, me, vt ms, idle ms, then per stream (suffix, entry ids, delivery counts), ids
# and counts space-separated. Re-claims our own live entries (see `ours`) with JUSTID
# (the delivery count stays), 1,000 per XCLAIM, which sets their idle time, i.e. moves
# the lease deadline. Returns per stream a string of 1/0 flags, one per id.
EXTEND = r"""
local me, vt, idle = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV, 3 do
  local key = P .. 'q:' .. ARGV[i]
  local ids, counts = {}, {}
  for id in string.gmatch(ARGV[i + 1], '%S+') do ids[#ids + 1] = id end
  for c in string.gmatch(ARGV[i + 2], '%S+') do counts[#counts + 1] = tonumber(c) end
  local held, ok, flags = ours(key, ids, counts, me, vt), {}, {}
  for j, id in ipairs(ids) do
    if held[j] then ok[#ok + 1] = id; flags[j] = '1' else flags[j] = '0' end
  end
  with_ids({'XCLAIM', key, G, me, 0}, ok, {'IDLE', idle, 'JUSTID'})
  out[#out + 1] = table.concat(flags)
end
return out
"""

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

# ARGV: P. Returns {ready, delayed, in flight, dead, counters (flat), pending per
# consumer (flat), now}.
STATS = r"""
local ready, pend, per = 0, 0, {}
for _, p in ipairs(redis.call('ZRANGE', P .. 'prios', 0, -1)) do
  ready = ready + redis.call('ZCARD', P .. 'ret:' .. p)
end
for _, p in ipairs(streams()) do
  local key = P .. 'q:' .. p
  local len = redis.call('XLEN', key)
  local s = redis.pcall('XPENDING', key, G)
  if type(s) == 'table' and s.err then return redis.error_reply(s.err) end
  local c = tonumber(s[1])
  ready = ready + len - c
  pend = pend + c
  if s[4] then
    for _, x in ipairs(s[4]) do per[x[1]] = (per[x[1]] or 0) + tonumber(x[2]) end
  end
end
local flat = {}
for k, v in pairs(per) do flat[#flat + 1] = k; flat[#flat + 1] = v end
return {ready, redis.call('ZCARD', P .. 'delayed'), pend, redis.call('XLEN', P .. 'dead'),
  redis.call('HGETALL', P .. 'counters'), flat, NOW}
"""

# ARGV: P, limit, up-to id, then message ids (none: everything up to that id).
# mode 'r' puts dead messages back (attempts reset), 'p' deletes them.
_DLQ_BODY = r"""
local limit, upto = tonumber(ARGV[2]), ARGV[3]
local n = 0
local function take(id, f)
  redis.call('XDEL', P .. 'dead', id)
  redis.call('HDEL', P .. 'deadidx', f['m'])
  if MODE == 'r' then add_entry(f['p'], f['m'], f['t'], f['d'], 0, nil) end
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
if n > 0 then redis.call('HINCRBY', P .. 'counters', 'dlq_version', 1) end
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
  if type(r) ~= 'table' or not r.err then made = made + 1 end
end
redis.pcall('XGROUP', 'CREATE', P .. 'wake', G, '$', 'MKSTREAM')
return made
"""


class Script:
    """A Lua script with its SHA1, run by EVALSHA (loaded again on NOSCRIPT)."""

    __slots__ = ("name", "source", "sha")

    def __init__(self, name: str, body: str) -> None:
        self.name = name
        self.source = _PRELUDE.replace("@RAW_LIMIT@", str(RAW_LIMIT)) + body
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()


SCRIPTS: dict[str, Script] = {
    name: Script(name, body)
    for name, body in {
        "publish": PUBLISH,
        "fetch": FETCH,
        "ack": ACK,
        "end": END,
        "extend": EXTEND,
        "reap_expired": REAP_EXPIRED,
        "reap_dead": REAP_DEAD,
        "retire": RETIRE,
        "takeover": TAKEOVER,
        "bury": BURY,
        "stats": STATS,
        "redrive": REDRIVE,
        "purge": PURGE,
        "recover": RECOVER,
    }.items()
}
