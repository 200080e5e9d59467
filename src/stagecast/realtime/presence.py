"""Who is watching: unique viewers per room, on one node or summed across nodes via Redis.

Each node keeps its own room -> viewer -> socket count. With Redis, every node also writes
its viewers of a room to a set that expires unless refreshed; the room's count is the size
of the union of the nodes' sets, so a viewer with tabs on two nodes counts once.

A join or leave changes one member of the node's set (`record`), so a room filling up costs
one SADD per arrival, not a rewrite of the whole set; the once-a-second tick rewrites it
(`publish_local`), which also mends any order two in-flight changes of one viewer ended in.
The count is taken in Redis (SCARD of the one node's set, or the union's size), so 5,000
members never travel back to be counted.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

NODE_TTL_SECONDS = 5

# The unique viewers across the node sets in KEYS: one set is counted as it is; several are
# unioned into a scratch key (ARGV[1]) that is counted and dropped.
_COUNT = """
if #KEYS == 1 then
  return redis.call('SCARD', KEYS[1])
end
local n = redis.call('SUNIONSTORE', ARGV[1], unpack(KEYS))
redis.call('DEL', ARGV[1])
return n
"""


class Presence:
    def __init__(self, *, redis: Any | None, key_prefix: str) -> None:
        self._local: dict[str, dict[str, int]] = defaultdict(dict)
        self._redis = redis
        self._prefix = f"{key_prefix}:presence"
        self.node_id = uuid.uuid4().hex[:12]
        self.touched: set[str] = set()
        self._count = redis.register_script(_COUNT) if redis is not None else None

    def join(self, room: str, viewer: str) -> bool:
        """Count a socket of a viewer in; True when the viewer is new to this node's room."""
        viewers = self._local[room]
        viewers[viewer] = viewers.get(viewer, 0) + 1
        self.touched.add(room)
        return viewers[viewer] == 1

    def leave(self, room: str, viewer: str) -> bool:
        """Count a socket out; True when it was the viewer's last socket here."""
        viewers = self._local.get(room)
        if not viewers or viewer not in viewers:
            return False
        viewers[viewer] -= 1
        self.touched.add(room)
        if viewers[viewer] > 0:
            return False
        del viewers[viewer]
        if not viewers:
            del self._local[room]
        return True

    def rooms(self) -> set[str]:
        return set(self._local)

    def local_viewers(self, room: str) -> set[str]:
        return set(self._local.get(room, {}))

    async def record(self, room: str, viewer: str) -> None:
        """Bring this node's Redis set of a room in line with one viewer after a join or a
        leave: one SADD or SREM (no-op without Redis)."""
        if self._redis is None:
            return
        key = f"{self._prefix}:{room}:{self.node_id}"
        pipe = self._redis.pipeline(transaction=False)
        if viewer in self._local.get(room, {}):
            pipe.sadd(key, viewer)
            pipe.expire(key, NODE_TTL_SECONDS)
            pipe.sadd(f"{self._prefix}:{room}:nodes", self.node_id)
            pipe.expire(f"{self._prefix}:{room}:nodes", NODE_TTL_SECONDS * 4)
        else:
            pipe.srem(key, viewer)
        await pipe.execute()

    async def publish_local(self, room: str) -> None:
        """Write this node's viewers of a room to Redis (no-op without Redis)."""
        if self._redis is None:
            return
        key = f"{self._prefix}:{room}:{self.node_id}"
        viewers = self.local_viewers(room)
        pipe = self._redis.pipeline()
        pipe.delete(key)
        if viewers:
            pipe.sadd(key, *viewers)
            pipe.expire(key, NODE_TTL_SECONDS)
            pipe.sadd(f"{self._prefix}:{room}:nodes", self.node_id)
            pipe.expire(f"{self._prefix}:{room}:nodes", NODE_TTL_SECONDS * 4)
        await pipe.execute()

    async def _node_keys(self, redis: Any, room: str) -> list[str]:
        nodes = await redis.smembers(f"{self._prefix}:{room}:nodes")
        return [f"{self._prefix}:{room}:{n.decode() if isinstance(n, bytes) else n}" for n in nodes]

    async def count(self, room: str) -> int:
        """Unique viewers of a room across all nodes."""
        if self._redis is None:
            return len(self._local.get(room, {}))
        keys = await self._node_keys(self._redis, room)
        if not keys or self._count is None:
            return len(self._local.get(room, {}))
        scratch = f"{self._prefix}:{room}:count:{self.node_id}:{uuid.uuid4().hex[:8]}"
        return int(await self._count(keys=keys, args=[scratch]))

    async def viewers(self, room: str) -> set[str]:
        """The unique viewers of a room across all nodes (read only: `count` is its size)."""
        if self._redis is None:
            return self.local_viewers(room)
        keys = await self._node_keys(self._redis, room)
        if not keys:
            return self.local_viewers(room)
        return {v.decode() if isinstance(v, bytes) else v for v in await self._redis.sunion(keys)}

    async def lead(self, room: str, ttl_ms: int) -> bool:
        """Whether this node reports a room's count now (one node per room at a time)."""
        if self._redis is None:
            return True
        key = f"{self._prefix}:{room}:leader"
        if await self._redis.set(key, self.node_id, nx=True, px=ttl_ms):
            return True
        owner = await self._redis.get(key)
        owner = owner.decode() if isinstance(owner, bytes) else owner
        if owner == self.node_id:
            await self._redis.pexpire(key, ttl_ms)
            return True
        return False
