"""librdkafka's mock cluster as an embedded Kafka-protocol broker (``-m wangban.mock_broker``).

The confluent-kafka wheel ships librdkafka, whose mock cluster is a real Kafka-protocol broker
running in threads of the process that creates it: produce (idempotent producers included,
with sequence checks), fetch, consumer groups and committed offsets, all in memory. Compared
with Tansu (``docs/performance.md``, "The broker's idle cost"), it answers an idle consumer's
fetch for a tenth of the CPU, and it accepts ``InitProducerId``, so the production producer
settings (idempotence, acks=all) can be tested against it. Like Tansu, it does not answer a
long-poll early when a record arrives: the consumer's fetch wait still bounds each hop.

Three things it lacks, which this process supplies:

- **A chosen port.** The mock brokers listen on ports the kernel picks, another after each
  restart, and a client keeps the broker address it learnt from metadata until it is closed.
  This process listens on the port asked for, forwards each connection to the mock broker and
  has it advertise that port (or ``--advertised-port``, a proxy's), so a restarted broker is
  found again at the same address, as Tansu is. The forwarding costs a few percent of a core
  under load; the lane that uses this broker measures nothing.
- **CreateTopics.** The mock does not implement it (it creates an unknown topic with 4
  partitions on first use, the wrong count for ours). The registry's topics are created at
  start with their partition counts, and the bootstrap port also answers one JSON line,
  ``{"create_topics": [{"name": ..., "partitions": ...}]}`` → ``{"created": [...]}``, which
  :func:`wangban.kafka.ensure_topics` sends when the broker refuses CreateTopics. A Kafka
  request starts with a 4-byte length whose first byte is 0 for any frame under 16 MB, so the
  two cannot be confused.
- **Stopping on a signal.** SIGTERM and SIGINT destroy the cluster and exit.

Prints one JSON line on stdout once it serves: ``{"bootstrap": "127.0.0.1:<port>", ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAX_TOPIC_REQUEST = 1 << 20
TOPIC_ALREADY_EXISTS = 36  # the Kafka protocol's error code, as librdkafka returns it


class MockCluster:
    """One librdkafka mock cluster, driven through the library's C API (ctypes)."""

    def __init__(self, brokers: int = 1):
        self._lib = _load_librdkafka()
        errstr = ctypes.create_string_buffer(512)
        conf = self._lib.rd_kafka_conf_new()
        # The handle only hosts the cluster; it connects nowhere, so its warning about having
        # no bootstrap.servers is noise.
        self._lib.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, len(errstr))
        self._handle = self._lib.rd_kafka_new(0, conf, errstr, len(errstr))  # 0: a producer
        if not self._handle:
            raise RuntimeError(f"librdkafka: {errstr.value.decode(errors='replace')}")
        self._cluster = self._lib.rd_kafka_mock_cluster_new(self._handle, brokers)
        if not self._cluster:
            raise RuntimeError("librdkafka could not create its mock cluster")
        # Admin clients look for a controller in the metadata; the mock names none by default.
        self._lib.rd_kafka_mock_set_controller_id(self._cluster, 1)
        # A new group's first JoinGroup is held 3 s by default (Kafka's
        # group.initial.rebalance.delay.ms), as long as the suite's request timeout: a group
        # forms at once here, as on Tansu.
        self._lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._cluster, 0)
        self.topics: dict[str, int] = {}

    @property
    def listener(self) -> tuple[str, int]:
        """Where the first (only) mock broker listens."""
        first = self._lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode().split(",")[0]
        host, port = first.rsplit(":", 1)
        return host, int(port)

    def advertise(self, host: str, port: int) -> None:
        self._lib.rd_kafka_mock_broker_set_host_port(self._cluster, 1, host.encode(), port)

    def create_topic(self, name: str, partitions: int) -> bool:
        """Create ``name`` unless it exists; whether it was created now."""
        if name in self.topics:
            return False
        error = self._lib.rd_kafka_mock_topic_create(self._cluster, name.encode(), partitions, 1)
        if error not in (0, TOPIC_ALREADY_EXISTS):
            raise RuntimeError(f"mock topic {name}: librdkafka error {error}")
        # Already there: a client used it first and the mock made it on the spot.
        self.topics[name] = partitions
        return error == 0

    def destroy(self) -> None:
        if self._cluster:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._handle:
            self._lib.rd_kafka_destroy(self._handle)
            self._handle = None


def _load_librdkafka() -> Any:
    """The librdkafka bundled in the confluent-kafka wheel (never a system copy: the mock API
    changes between versions, the wheel pins one)."""
    try:
        import confluent_kafka
    except ImportError as exc:  # the `embedded` extra brings it
        raise RuntimeError("the mock broker needs confluent-kafka (the `embedded` extra)") from exc
    package = Path(confluent_kafka.__file__).resolve().parent
    candidates = sorted((package.parent / "confluent_kafka.libs").glob("librdkafka*.so*"))
    if not candidates:
        raise RuntimeError(f"no librdkafka next to {package}")
    lib = ctypes.CDLL(str(candidates[0]))
    p, i, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    size = ctypes.c_size_t
    lib.rd_kafka_conf_new.restype = p
    lib.rd_kafka_conf_set.argtypes = [p, s, s, s, size]
    lib.rd_kafka_new.restype = p
    lib.rd_kafka_new.argtypes = [i, p, s, size]
    lib.rd_kafka_destroy.argtypes = [p]
    lib.rd_kafka_mock_cluster_new.restype = p
    lib.rd_kafka_mock_cluster_new.argtypes = [p, i]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [p]
    lib.rd_kafka_mock_cluster_bootstraps.restype = s
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [p]
    lib.rd_kafka_mock_set_controller_id.argtypes = [p, ctypes.c_int32]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [p, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_host_port.argtypes = [p, ctypes.c_int32, s, i]
    lib.rd_kafka_mock_topic_create.restype = i
    lib.rd_kafka_mock_topic_create.argtypes = [p, s, i, i]
    return lib


class Front:
    """The chosen port: forwards Kafka connections to the mock broker, answers topic requests."""

    def __init__(self, cluster: MockCluster):
        self.cluster = cluster

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.read(1)
            if not first:
                return
            if first == b"{":
                await self._topics(first + await reader.readline(), writer)
                return
            host, port = self.cluster.listener
            up_reader, up_writer = await asyncio.open_connection(host, port)
            up_writer.write(first)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, OSError):
            pass  # a client or the broker went away; the connection is over either way
        except asyncio.CancelledError:
            pass  # stopping: the server cancels its connections; nothing to report
        finally:
            writer.close()

    async def _topics(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(line[:MAX_TOPIC_REQUEST])
            created = [
                topic["name"]
                for topic in request["create_topics"]
                if self.cluster.create_topic(str(topic["name"]), int(topic["partitions"]))
            ]
            answer: dict[str, Any] = {"created": created}
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            answer = {"error": repr(exc)}
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    finally:
        with contextlib.suppress(Exception):
            sink.close()


async def run(port: int, advertised_port: int | None, topics: Sequence[tuple[str, int]]) -> None:
    cluster = MockCluster()
    try:
        for name, partitions in topics:
            cluster.create_topic(name, partitions)
        host, listener = cluster.listener
        cluster.advertise("127.0.0.1", advertised_port or port)
        server = await asyncio.start_server(Front(cluster).serve, "127.0.0.1", port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(
            json.dumps(
                {
                    "bootstrap": f"127.0.0.1:{port}",
                    "listener": f"{host}:{listener}",
                    "advertised": f"127.0.0.1:{advertised_port or port}",
                    "topics": len(cluster.topics),
                }
            ),
            flush=True,
        )
        async with server:
            await stop.wait()
    finally:
        cluster.destroy()


def registry_topics() -> list[tuple[str, int]]:
    from wangban.events import load_all_event_modules, registry

    load_all_event_modules()
    return [(spec.name, spec.partitions) for spec in registry.topics.values()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wangban.mock_broker")
    parser.add_argument("--port", type=int, required=True, help="bootstrap port to listen on")
    parser.add_argument(
        "--advertised-port", type=int, help="port the broker tells clients (a proxy's)"
    )
    parser.add_argument(
        "--no-registry-topics",
        action="store_true",
        help="do not create the event registry's topics at start",
    )
    args = parser.parse_args(argv)
    topics = [] if args.no_registry_topics else registry_topics()
    try:
        import uvloop
    except ImportError:  # not on Windows; the plain loop forwards too, more slowly
        asyncio.run(run(args.port, args.advertised_port, topics))
    else:
        uvloop.run(run(args.port, args.advertised_port, topics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
