"""The Lua scripts of a message's way through: publish, fetch, ack and end (nack,
release, defer). Extending a lease is a plain XCLAIM (see extending.py)."""

from __future__ import annotations

# How long Redis keeps the record that a publish call was stored (`pub:<token>`,
# `pubseq:<publisher>`), seconds: a call sent again after its reply was lost finds
# it there if the outage was shorter. A publisher whose outage ran longer than
# this (less a margin, MARK_KEEP) does not send the call blind: a batch asks with
# retry flag 2, a dedup publish GETs its `pub:` mark, and a missing mark then means
# "unknown", not "not stored" (marks.py).
MARK_TTL = 86_400
MARK_KEEP = MARK_TTL - 3600
# A publisher's batches register the levels they store to (flag `r`, ZADD NX) at most
# this often, seconds: a member an operator's cleanup removed comes back, not a ZADD
# per publish (a new level's stream is registered when the script makes it).
REGISTER_EVERY = 1.0
UNKNOWN = (
    f"outcome unknown: the reply was lost and Redis out of reach for over {MARK_KEEP} s; "
    "it may be stored (not sent again)"
)

# ARGV: P, token, dedup window ms, then (priority, id, data, dedup id or '') per message.
# Returns {} when the batch had no dedup ids, else the id each publish resolved to.
PUBLISH = r"""
local tok = P .. 'pub:' .. ARGV[2]
local prev = redis.call('GET', tok)
if prev then
  if prev == '' then return {} end
  return cjson.decode(prev)
end
local window, now = tonumber(ARGV[3]), tostring(NOW)
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
    add_entry(ARGV[i], m, now, ARGV[i + 2])
    added = added + 1
  end
  out[#out + 1] = mid
end
if added > 0 then incr(P .. 'counters', 'published', added) end
if dedup then
  redis.call('SET', tok, cjson.encode(out), 'EX', @MARK_TTL@)
  return out
end
redis.call('SET', tok, '', 'EX', @MARK_TTL@)
return {}
""".replace("@MARK_TTL@", str(MARK_TTL))

# ARGV: P, publisher, batch number, retry flag, then (priority, id, time, data) per
# message. The group commit's publishes (no dedup id), run `lean`: one XADD each to
# a level that exists (NOMKSTREAM), the level made first when not (new, or Redis
# lost it). Flag `r` after the retry flag: each level stored to is registered, once
# per call (ZADD NX: a member an operator's cleanup or a foreign client removed is
# put back, or nobody would fetch from it); a publisher asks for it at most once a
# second (REGISTER_EVERY). `pubseq:<publisher>` holds the number of its last
# batch stored: a batch
# sent again (retry flag 1) after its reply was lost adds nothing if it is there
# (a publisher numbers its batches up and sends them one at a time); with flag 2
# (sent again past MARK_KEEP) it adds nothing either way and returns -1 when the
# mark is not there. The time is
# the publisher's reading of the Redis clock (it saves a TIME per call). Returns
# the positions (0-based) of messages not stored: their level's key is no stream
# (a foreign writer's); the others are stored, once (the mark keeps the positions).
PUBLISH_BATCH = r"""
local mark, seq = P .. 'pubseq:' .. ARGV[2], tonumber(ARGV[3])
local again, reg = string.sub(ARGV[4], 1, 1), string.sub(ARGV[4], 2) == 'r'
if again ~= '0' then
  local v = redis.pcall('GET', mark)
  local done, failed = string.match(type(v) == 'string' and v or '', '^(%d+)(.*)$')
  if (tonumber(done) or 0) >= seq then
    local out = {}
    for i in string.gmatch(failed, '%d+') do out[#out + 1] = tonumber(i) end
    return out
  end
  if again == '2' then return -1 end  -- the mark may have expired: add nothing
end
local bad = {}
for i = 5, #ARGV, 4 do
  local p, m, t, d = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local r = redis.pcall('XADD', P .. 'q:' .. p, 'NOMKSTREAM', '*', 'm', m, 't', t, 'd', d)
  if not r then  -- no stream: made, with its groups (registered or not)
    local key = level(p)
    redis.pcall('XGROUP', 'CREATE', key, G, '0', 'MKSTREAM')
    redis.pcall('XGROUP', 'CREATE', P .. 'q:r' .. p, G, '0', 'MKSTREAM')
    redis.call('XADD', key, '*', 'm', m, 't', t, 'd', d)
  elseif type(r) == 'table' and r.err then
    bad[#bad + 1] = (i - 5) / 4
  elseif reg then
    level(p)  -- registered (once per call): a member removed by hand is put back
  end
end
incr(P .. 'counters', 'published', (#ARGV - 4) / 4 - #bad)
redis.call('SET', mark, seq .. ' ' .. table.concat(bad, ' '), 'EX', @MARK_TTL@)
return bad
""".replace("@MARK_TTL@", str(MARK_TTL))

# ARGV: P, me, n, promote limit[, floor]. Moves due retries back, then reads up to n
# entries, highest priority first; within a level, returned messages (in their
# original order) before new ones. Returns {now, next due or -1, priorities,
# stream suffix, entries, stream suffix, entries, ...}.
# With a floor (a priority) it reads nothing: it only readies what a native
# XREADGROUP of the levels >= floor (each level's returned stream, then its new
# one) sent right after it in the same pipeline must see: due retries back, and up
# to n returned messages of those levels moved to their returned streams (the
# reader's fast path: no entry passes through Lua). Returns {now, next due, prios}.
FETCH = r"""
local me, n = ARGV[2], tonumber(ARGV[3])
local floor = tonumber(ARGV[5] or '')
local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[4]))
for _, m in ipairs(due) do
  local k = P .. 'dl:' .. m
  local f = fmap(redis.call('HGETALL', k))
  if f['m'] then  -- a field a foreign writer left out: its entry is dead-lettered as undecodable
    local prio = tonumber(f['p']) and f['p'] or '0'
    give_back(prio, f['o'] or '', f['m'], f['t'] or '', f['d'] or '', f['a'] or '', f['h'])
  end
  redis.call('DEL', k)
  redis.call('ZREM', P .. 'delayed', m)
end
local nxt = redis.call('ZRANGE', P .. 'delayed', 0, 0, 'WITHSCORES')
local prios = levels(true)
local out = {NOW, -1, prios}
if #nxt > 0 then out[2] = tonumber(nxt[2]) end
local function read(s, count)
  local key = P .. 'q:' .. s
  local r = redis.pcall('XREADGROUP', 'GROUP', G, me, 'COUNT', count, 'STREAMS', key, '>')
  if type(r) == 'table' and r.err then  -- a level without its streams: made, read next time
    redis.pcall('XGROUP', 'CREATE', key, G, '0', 'MKSTREAM')
    return
  end
  if r and r[1] and #r[1][2] > 0 then
    out[#out + 1] = s
    out[#out + 1] = r[1][2]
    n = n - #r[1][2]
  end
end
for _, p in ipairs(prios) do
  if n <= 0 or (floor and tonumber(p) < floor) then break end
  local rz = P .. 'ret:' .. p
  local back = redis.call('ZRANGE', rz, 0, n - 1)
  if #back > 0 then
    local rkey = P .. 'q:r' .. p
    for _, member in ipairs(back) do
      local bar = string.find(member, '|', 1, true)  -- 'order|id'; a foreign one may lack it
      local m = bar and string.sub(member, bar + 1) or member
      local k = P .. 'rt:' .. m
      local f = fmap(redis.call('HGETALL', k))
      redis.call('DEL', k)
      if f['m'] then  -- a field left out: the entry is dead-lettered as undecodable
        local t, d, a, o = f['t'] or '', f['d'] or '', f['a'] or '', f['o'] or ''
        if f['h'] ~= nil and f['h'] ~= '' then
          redis.call('XADD', rkey, '*', 'm', f['m'], 't', t, 'd', d, 'a', a, 'o', o, 'h', f['h'])
        else
          redis.call('XADD', rkey, '*', 'm', f['m'], 't', t, 'd', d, 'a', a, 'o', o)
        end
      end
    end
    for s = 1, #back, 1000 do  -- unpack takes at most a few thousand values
      redis.call('ZREM', rz, unpack(back, s, math.min(s + 999, #back)))
    end
    if floor then n = n - #back end
  end
  if not floor then
    read('r' .. p, n)  -- n, not #back: also what a broken fast read left unread
    if n > 0 then read(p, n) end
  end
end
return out
"""

# ARGV: P, me, vt ms, then (stream suffix, entry id, delivery count) per ack.
# One XACK per stream for the whole batch: an entry still pending is this
# delivery's (a message that comes back -- expired, nacked, its worker dead -- is
# always a new entry, and its old one is acked and deleted in the same script), so
# a stale receipt's XACK acks nothing. The lease clock is checked where the receipt
# is (the worker's own deadline); Redis only confirms the entry was still pending.
# The acked entries stay in the stream until `tidy` trims them in bulk; one counter
# update per batch. (`me`, the vt and the counts are no longer needed here; the
# arguments stay those of every ack caller.) Returns the 1-based positions of the
# rejected acks.
ACK = r"""
local bad, nok, groups, order, lost = {}, 0, {}, {}, nil
for i = 4, #ARGV, 3 do
  local g = groups[ARGV[i]]
  if not g then
    g = {s = ARGV[i], key = P .. 'q:' .. ARGV[i], ids = {}, at = {}}
    groups[ARGV[i]] = g
    order[#order + 1] = g
  end
  g.ids[#g.ids + 1] = ARGV[i + 1]
  g.at[#g.at + 1] = (i - 1) / 3
end
for _, g in ipairs(order) do
  local ids, n = g.ids, 0
  for s = 1, #ids, 1000 do
    n = n + redis.call('XACK', g.key, G, unpack(ids, s, math.min(s + 999, #ids)))
  end
  if n < #ids then  -- rare: some were not pending (ended meanwhile): those are gone
    local r = redis.pcall('XPENDING', g.key, G, '-', '+', 1)  -- or the group is lost
    if type(r) == 'table' and r.err then lost = r.err end
    for j, id in ipairs(ids) do
      if #redis.call('XRANGE', g.key, id, id) == 0 then bad[#bad + 1] = g.at[j] end
    end
  end
  if n > 0 then tidy(g.s, g.key, ids, n) end
  nok = nok + n
end
if nok > 0 then incr(P .. 'counters', 'acked', nok) end
if lost then return redis.error_reply(lost) end
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
