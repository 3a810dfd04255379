"""The prelude every Lua script of the Redis broker starts with (its shared locals and
functions: levels, give-back, history, bury, lease ownership, finishing a delivery),
its head (all that a `lean` script runs), and `Script`, a script's full source and
SHA1."""

from __future__ import annotations

import hashlib

from ccdash.brokers.types import RAW_LIMIT

GHOST_LIMIT = 10_000  # acked entries a stream may keep until a bulk trim (see `tidy`)

# The head of every script: a counter that cannot fail, and how a priority level is
# made (its streams, and the group on them). A script on every message's path runs
# with just these (`lean`): each line of the full prelude runs on every call.
HEAD = r"""
local P = ARGV[1]
local G = 'ccdash'
-- HINCRBY that a value a foreign writer left (no integer) cannot fail: it starts
-- again from `n`. Returns the new value.
local function incr(key, field, n)
  local r = redis.pcall('HINCRBY', key, field, n)
  if type(r) == 'table' and r.err then
    redis.call('HSET', key, field, n)
    return n
  end
  return r
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
"""

PRELUDE = (
    HEAD
    + r"""local RAW = @RAW_LIMIT@  -- bytes of an undecodable entry kept in its dead letter
local GHOSTS = @GHOST_LIMIT@  -- acked entries a stream keeps for a bulk trim (see tidy)
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)

local function fmap(f)
  local m = {}
  for i = 1, #f, 2 do m[f[i]] = f[i + 1] end
  return m
end

-- A stream suffix ('<prio>' or 'r<prio>') -> its priority.
local function prio_of(s)
  if string.sub(s, 1, 1) == 'r' then return string.sub(s, 2) end
  return s
end

-- The priority levels, highest first with `desc`: a member a foreign writer left
-- that is no priority (not an integer from -1000 to 1000) is dropped on sight.
local function levels(desc)
  local out = {}
  for _, p in ipairs(redis.call(desc and 'ZREVRANGE' or 'ZRANGE', P .. 'prios', 0, -1)) do
    local n = string.match(p, '^%-?%d%d?%d?%d?$') and tonumber(p)
    if n and n >= -1000 and n <= 1000 and tostring(n) == p then
      out[#out + 1] = p
    else
      redis.call('ZREM', P .. 'prios', p)
    end
  end
  return out
end

-- Every level's two streams, as suffixes.
local function streams()
  local out = {}
  for _, p in ipairs(levels(false)) do
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

-- A new message (attempts 0: no `a` field) at the tail of its level. `t` is a
-- string: a Lua number would be formatted (snprintf) on every call.
local function add_entry(prio, m, t, d)
  return redis.call('XADD', level(prio), '*', 'm', m, 't', t, 'd', d)
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
  incr(P .. 'counters', 'dead_lettered', 1)
  incr(P .. 'counters', 'dlq_version', 1)
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

-- `n` of `ids` (entries of stream `s`, key `key`) were just acked. Acked entries
-- stay in their stream (ghosts, counted per stream in `ghosts` for stats) until
-- one XTRIM MINID takes every entry below the oldest one still needed: the first
-- pending entry, or else the first the group has not read. Below that point every
-- entry was read and is no longer pending, i.e. acked (or already deleted), so
-- whole stream nodes go at once instead of an XDEL per entry. A lease held for
-- long stops the trim: past GHOSTS ghosts in a stream, acked entries are deleted
-- one by one again, so memory stays bounded however long it is held.
local function tidy(s, key, ids, n)
  local first, upto = redis.call('XPENDING', key, G, '-', '+', 1)[1], nil
  if first then
    upto = first[1]
  else
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
      local f = fmap(g)
      if f['name'] == G then
        local ms, seq = string.match(f['last-delivered-id'], '^(%d+)-(%d+)$')
        if ms then upto = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1) end
      end
    end
  end
  local gone = 0
  if upto then gone = redis.call('XTRIM', key, 'MINID', upto) end
  if not first and upto then
    redis.call('HDEL', P .. 'ghosts', s)  -- nothing pending: every ghost is gone
  elseif gone ~= n and incr(P .. 'ghosts', s, n - gone) > GHOSTS then
    local del = 0
    for i = 1, #ids, 1000 do
      del = del + redis.call('XDEL', key, unpack(ids, i, math.min(i + 999, #ids)))
    end
    incr(P .. 'ghosts', s, -del)
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
      incr(P .. 'counters', 'dead_lettered', 1)
      incr(P .. 'counters', 'dlq_version', 1)
      return 'dead'
    end
    incr(P .. 'counters', 'redelivered', 1)
  end
  if delay > 0 then
    local k = P .. 'dl:' .. f['m']
    redis.call('HSET', k, 'p', prio, 'o', order, 'm', f['m'], 't', f['t'], 'd', f['d'],
      'a', a, 'h', h)
    redis.call('ZADD', P .. 'delayed', NOW + delay, f['m'])
    -- The earliest retry now: a reader parked in Redis bounded its park by a later
    -- one (or by none); a wake entry unparks it to fetch and park again until this.
    if redis.call('ZRANGE', P .. 'delayed', 0, 0)[1] == f['m'] then
      redis.call('XADD', P .. 'wake', 'MAXLEN', '~', 64, '*', 'w', '1')
    end
    return 'delayed'
  end
  give_back(prio, order, f['m'], f['t'], f['d'], a, h)
  return 'ready'
end
"""
)


class Script:
    """A Lua script with its SHA1, run by EVALSHA (loaded again on NOSCRIPT)."""

    __slots__ = ("name", "source", "sha")

    def __init__(self, name: str, body: str, *, lean: bool = False) -> None:
        self.name = name
        prelude = PRELUDE.replace("@RAW_LIMIT@", str(RAW_LIMIT))
        prelude = prelude.replace("@GHOST_LIMIT@", str(GHOST_LIMIT))
        self.source = (HEAD if lean else prelude) + body
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
