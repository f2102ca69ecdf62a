#!/usr/bin/env python
"""CPU per UserInfo request at the fleet sync's concurrency, by way of making it.

    python benchmarks/http_floor.py [--requests 2000] [--concurrency 32] [--latency 0.1]

The fleet sync's CPU is mostly what it costs to have many requests in flight.
This measures that cost alone, against the simulator in a process of its own
(the same fleet as ``fleet_sync.py``), for each way of making the requests:

- ``client``: the app's ``CronofyClient.userinfo`` in threads, without the rate
  limiter (what ``sync_accounts`` does, minus the database);
- ``requests``: ``requests.Session.get`` in threads;
- ``urllib3``: ``urllib3.PoolManager.request`` in threads (under requests);
- ``asyncio``: one event loop, stdlib streams and a minimal HTTP/1.1 parser
  (not a client: the floor of any single-threaded one);
- ``aiohttp`` and ``httpx``: their async clients, when installed.

Each prints CPU per request (user and system) and wall time; compare figures
from one run (the machine is shared). Not a test, and nothing here is used by
the app: it says where the floor is for a decision about the transport.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import fleet_sync  # noqa: E402 (the path above)


def measure(name: str, count: int, run: Callable[[], None]) -> None:
    before, started = os.times(), time.perf_counter()
    run()
    after, wall = os.times(), time.perf_counter() - started
    user, system = after[0] - before[0], after[1] - before[1]
    print(
        f"  {name:9s} {(user + system) * 1000 / count:6.3f} ms CPU per request "
        f"(user {user * 1000 / count:.3f}, system {system * 1000 / count:.3f}), wall {wall:.2f} s"
    )


def in_threads(count: int, concurrency: int, call: Callable[[str], None]) -> Callable[[], None]:
    def run() -> None:
        tokens: queue.Queue[str] = queue.Queue()
        for i in range(count):
            tokens.put(fleet_sync.tokens_for(i)[0])

        def worker() -> None:
            while True:
                try:
                    token = tokens.get_nowait()
                except queue.Empty:
                    return
                call(token)

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return run


def in_event_loop(count: int, concurrency: int, make) -> Callable[[], None]:
    """``make()`` (in the loop) returns ``(get(token), close())``, both coroutines."""

    async def main() -> None:
        get, close = await make()
        tokens = [fleet_sync.tokens_for(i)[0] for i in range(count)]

        async def worker() -> None:
            while tokens:
                await get(tokens.pop())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await close()

    return lambda: asyncio.run(main())


def stdlib_streams(host: str, port: int):
    async def make():
        connections: asyncio.Queue = asyncio.Queue()

        async def get(token: str) -> None:
            if connections.empty():
                connections.put_nowait(await asyncio.open_connection(host, port))
            reader, writer = await connections.get()
            writer.write(
                f"GET /v1/userinfo HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            connections.put_nowait((reader, writer))

        async def close() -> None:
            while not connections.empty():
                connections.get_nowait()[1].close()

        return get, close

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    count, concurrency = args.requests, args.concurrency
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
    }
    simulator = fleet_sync.Simulator(count, args.latency, "", env)
    try:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="benchmarks.settings",
            BENCH_SIM_URL=simulator.url,
            BENCH_RATE_LIMITS="",
        )
        import django

        django.setup()
        import requests
        import urllib3

        from django_cronofy_conferencing.client import get_client

        url = f"{simulator.url}/v1/userinfo"
        host, port = simulator.url.rsplit("//", 1)[1].split(":")
        print(
            f"{count} UserInfo requests, concurrency {concurrency}, latency "
            f"{args.latency * 1000:.0f} ms; load average {fleet_sync.load_average():.2f}"
        )
        local = threading.local()

        def client_call(token: str) -> None:
            get_client("sim").userinfo(token)

        def requests_call(token: str) -> None:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            session.get(url, headers={"Authorization": f"Bearer {token}"}).content  # noqa: B018

        pool = urllib3.PoolManager(maxsize=concurrency)

        def urllib3_call(token: str) -> None:
            pool.request("GET", url, headers={"Authorization": f"Bearer {token}"}).data  # noqa: B018

        measure("client", count, in_threads(count, concurrency, client_call))
        measure("requests", count, in_threads(count, concurrency, requests_call))
        measure("urllib3", count, in_threads(count, concurrency, urllib3_call))
        streams = stdlib_streams(host, int(port))
        measure("asyncio", count, in_event_loop(count, concurrency, streams))
        try:
            import aiohttp
        except ImportError:
            print("  aiohttp   not installed")
        else:

            async def make_aiohttp():
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

                async def get(token: str) -> None:
                    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                        await r.read()

                return get, session.close

            measure("aiohttp", count, in_event_loop(count, concurrency, make_aiohttp))
        try:
            import httpx
        except ImportError:
            print("  httpx     not installed")
        else:

            async def make_httpx():
                client = httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency))

                async def get(token: str) -> None:
                    await client.get(url, headers={"Authorization": f"Bearer {token}"})

                return get, client.aclose

            measure("httpx", count, in_event_loop(count, concurrency, make_httpx))
        print(f"load average at the end {fleet_sync.load_average():.2f}")
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
