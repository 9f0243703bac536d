"""Redis stores with bounded timeouts, so a dead or frozen server is an error, not a hang.

ProxyStore's ``RedisConnector`` uses redis-py's defaults: no socket timeout,
and retries with backoff.  :class:`BoundedRedisConnector` (what
:func:`redis_store` builds) fails every command after ``timeout`` seconds and
one quick retry; receivers apply :data:`REDIS_TIMEOUT` to plain
``RedisConnector`` stores named in a payload too.
"""

from __future__ import annotations

import uuid
from typing import Any

from proxystore.connectors.redis import RedisConnector
from proxystore.store import Store

__all__ = ["REDIS_TIMEOUT", "BoundedRedisConnector", "bounded_redis_client", "redis_store"]

REDIS_TIMEOUT = 10.0  # seconds


def bounded_redis_client(hostname: str, port: int, timeout: float) -> Any:
    """A redis-py client whose every command gives up after about ``timeout`` seconds."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.StrictRedis(
        host=hostname,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
    )


class BoundedRedisConnector(RedisConnector):
    """ProxyStore's ``RedisConnector`` with bounded socket timeouts.

    Every Redis command fails after ``timeout`` seconds (connect or read) and
    one quick retry, instead of waiting forever on a server that is gone or
    stopped.  ``timeout`` travels in the connector config, so receivers use it
    too.
    """

    def __init__(
        self, hostname: str, port: int, clear: bool = False, timeout: float = REDIS_TIMEOUT
    ) -> None:
        super().__init__(hostname, port, clear)
        self.timeout = float(timeout)
        self._redis_client = bounded_redis_client(hostname, port, self.timeout)

    def config(self) -> dict[str, Any]:
        """The configuration ``from_config`` rebuilds this connector from."""
        return {**super().config(), "timeout": self.timeout}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BoundedRedisConnector:
        """Rebuild a connector from :meth:`config`."""
        return cls(**config)


def redis_store(
    hostname: str = "127.0.0.1",
    port: int = 6379,
    *,
    name: str | None = None,
    timeout: float = REDIS_TIMEOUT,
    cache_size: int = 0,
) -> Store[Any]:
    """A ProxyStore ``Store`` on a Redis server, with bounded timeouts.

    Use it as ``ProxyPolicy(store=redis_store("10.0.0.5", 6379))``.  ``name``
    defaults to a unique name; ``cache_size=0`` keeps resolved objects out of a
    per-process cache (a 100 MB object is not kept alive after its proxy).
    """
    return Store(
        name or f"serdoctor-redis-{uuid.uuid4().hex[:12]}",
        BoundedRedisConnector(hostname, port, timeout=timeout),
        cache_size=cache_size,
    )
