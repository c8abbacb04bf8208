"""The Redis backend: many worker processes (and machines) on one Redis 7 server.

``redis://[[user]:password@]host:6379/0?prefix=perdure:`` (``rediss://`` for TLS).
Every key starts with the prefix (``perdure:`` by default), so several applications
can share one database; other query parameters go to redis-py (``socket_timeout``,
``max_connections``, ...). Needs redis-py: ``pip install 'perdure[redis]'``.

Every method that writes is one Lua script (EVALSHA), which Redis runs atomically; a
checkpoint batch is one script call (a group commit), each checkpoint in it checked in
full (fenced by owner + token, its journal entries continuing the journal) before it
writes, since Redis does not undo a script that fails halfway. Claims pop due runs in
a script too, so processes never claim a run twice; an admission to a queue is one
script, so the queue's limits hold however many processes admit at once. Scripts
derive their keys from the prefix (flag ``no-cluster``): one server, not a cluster.
Workers find new work by polling (``poll_interval``).

The keys of one store (``P`` the prefix; a time is stored as its repr string, a
payload as raw bytes, a field that is None is absent):

- ``P run:<id>`` hash: the run's record, one field per ``RunRecord`` attribute but
  ``queued``, which is whether it has a ``ready_at`` (when its queue may admit it).
- ``P journal:<id>`` hash: seq -> the entry (a JSON header, a newline, the detail and
  the payload); a seq already there refuses the checkpoint that repeats it.
- ``P inbox:<id>`` sorted set: the unconsumed inbox item ids, scored by id (the
  order of arrival); ``P item:<item id>`` hash: the item; ``P next_item``: the
  counter that numbers items.
- ``P waits:<id>`` sorted set: the unconsumed items other than messages, by
  visible_at: when a parked run needs waking (``rules.wake_after``).
- ``P keys:<id>`` hash: item key -> item id, consumed items included, so that a key
  is used once per run (per generation: a continued run keeps only its carried-over
  items' keys).
- ``P events:<id>`` hash: event key -> value.
- ``P due:<workflow>`` sorted set: runs of no version with no lease that need a
  worker, by wake_at; ``P leases:<workflow>`` sorted set: leased runs of no version, by
  lease_until. A claim takes due members and members whose lease ran out, in one
  script; ``next_wake_at`` reads the first of each (``P workflows`` is the set of
  workflow names). Those are the lanes of the default queue for runs of no version:
  runs pinned to a version wait in lanes of their own, ``P vdue:<n>:<version>:<workflow>``
  and ``P vleases:...`` (``n`` the version's length), and runs of another queue in
  ``P qdue:<m>:<queue>:<workflow>``, ``P qvdue:<m>:<queue>:<n>:<version>:<workflow>``
  and the like (``m`` the queue's length), so a worker reads only the lanes it may take
  from. ``P versions:<workflow>`` (``P qversions:<m>:<queue>:<workflow>`` for another
  queue) lists the versions with runs in lanes, ``P queues:<workflow>`` the queues
  other than the default.
- ``P idx:all``, ``P idx:workflow:<name>``, ``P idx:status:<status>``,
  ``P idx:parent:<id>``, ``P idx:key:<key>``, ``P idx:queue:<name>`` sorted sets: run
  ids by created_at, for ``list_runs`` (ties sort by id, as the cursor does);
  ``P finished`` sorted set: ended runs by finished_at, for ``purge_runs``.
- Queues (``admit_runs``): a queued run has a ``ready_at`` and no ``wake_at`` until
  admitted. ``P waiting:<priority>:<queue>`` sorted sets: its pending queued runs of
  one priority, by ready_at (ties by id), and ``P priorities:<queue>`` sorted set: the
  priorities with such runs; ``P occupying:<queue>`` set: its admitted runs that have
  not ended, and ``P occupying_keys:<queue>`` hash: run key -> how many of them have
  it; ``P admitted:<queue>`` sorted set: its runs by admitted_at, for rate limits;
  ``P dedup:<queue>`` hash: dedup key -> the run that took it last, which holds it
  until it ends.
- ``P workers`` sorted set: worker ids by when they were last seen; ``P worker:<id>``
  hash: its ``seen_at`` and ``info``.
- ``P layout``: the version of this layout, written by the first open; an open
  upgrades an older layout in place (``lua/layout.lua``).
"""

from .backend import RedisBackend

__all__ = ["RedisBackend"]
