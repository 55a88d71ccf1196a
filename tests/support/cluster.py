"""A comet_server cluster for tests and benches: one real redis-server (tests/support/redis_server.py)
and comet_server nodes over it as subprocesses, node ``x`` started with ``--node-id node-x``."""

from __future__ import annotations

from .redis_server import RedisServer
from .server import ServerProcess


class Cluster:
    def __init__(self, names: tuple[str, ...] = ("a", "b", "c"), *, cometql: bool = True,
                 test_pages: bool = False) -> None:
        self.redis = RedisServer().start()
        self.nodes: dict[str, ServerProcess] = {}
        try:
            for name in names:
                self.nodes[name] = ServerProcess(cometql=cometql, test_pages=test_pages, redis_url=self.redis.url,
                                                 node_id=f"node-{name}").start()
        except BaseException:
            self.close()
            raise

    def __getitem__(self, name: str) -> ServerProcess:
        return self.nodes[name]

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()
        self.redis.close()

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.log()[-3000:]}" for n, p in self.nodes.items())
