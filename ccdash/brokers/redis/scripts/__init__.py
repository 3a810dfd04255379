"""The Lua scripts of the Redis broker: each state change is one atomic script.

Model (see keys.Keys for the names):
  ready    an entry of its priority's stream not yet delivered to the group;
  leased   an entry pending (in the group's PEL) for the worker that read it;
           its idle time is the lease clock (XCLAIM ... JUSTID extends it);
  delayed  a hash `dl:<id>` plus a member of the `delayed` ZSET (due, Redis ms);
  dead     an entry of the `dead` stream (`deadidx` maps message id -> entry);
  acked    XACK; the entry stays in its stream (counted in `ghosts`) until an ack
           trims every entry below the oldest one still pending or unread.
A message that comes back (released, retried, expired, its worker died) keeps
its place: it waits in its level's `ret:<prio>` ZSET (members sort by its first
entry's id, `o`) with its fields in a hash `rt:<id>`, and a fetch moves it to
the level's returned stream `q:r<prio>` (read in the same script, so that stream
never holds unread entries) before reading new entries of that level: returned
messages were read before every unread entry of their level, so they go first.
A returned entry carries `a` (attempts used), `h` (its failure history, JSON)
and `o`. Attempt = a + the entry's delivery count. Scripts name a stream by its
suffix: `<prio>` (new entries) or `r<prio>` (returned ones). A `wake` stream
wakes a reader parked in XREADGROUP BLOCK when something comes back, or when a
retry becomes the earliest due (its park was bounded by a later one).

Every script takes the key prefix as ARGV[1] and reads Redis TIME, so stored
times are the server's wall clock, the same for every host.

The scripts are grouped by concern: `delivery` (publish, fetch, ack, end),
`reaping` (expired leases, dead workers, retire, bury, takeover) and `admin` (stats,
redrive, purge, recover,
rediscover); `prelude` is the shared head of each. `SCRIPTS` names them all.
"""

from __future__ import annotations

from ccdash.brokers.redis.scripts.admin import PURGE, RECOVER, REDISCOVER, REDRIVE, STATS
from ccdash.brokers.redis.scripts.delivery import ACK, END, FETCH, PUBLISH, PUBLISH_BATCH
from ccdash.brokers.redis.scripts.prelude import Script
from ccdash.brokers.redis.scripts.reaping import BURY, REAP_DEAD, REAP_EXPIRED, RETIRE, TAKEOVER

SCRIPTS: dict[str, Script] = {
    name: Script(name, body)
    for name, body in {
        "publish": PUBLISH,
        "fetch": FETCH,
        "ack": ACK,
        "end": END,
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
SCRIPTS["publish_batch"] = Script("publish_batch", PUBLISH_BATCH, lean=True)
SCRIPTS["rediscover"] = Script("rediscover", REDISCOVER, lean=True)

__all__ = ["SCRIPTS", "Script"]
