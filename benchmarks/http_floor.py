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
- ``aiohttp`` and ``httpx``: their async clients, when installed;
- ``fleet``: the app's ``fleet_http.AsyncUserInfo`` on aiohttp (what
  ``sync_accounts`` does on its event loop, minus the database and the rate
  limiter), when aiohttp is installed.

Each decodes the JSON of every answer and counts the 200s (any other answer
fails the run); its clients, sessions and connections are made in a warm-up
round of one request per worker, outside the measured window. Each prints CPU
per request (user and system, ``getrusage``) and wall time; compare figures
from one run (the machine is shared). Not a test, and nothing here is used by
the app: it says where the floor is for a decision about the transport.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import fleet_sync  # noqa: E402 (the path above)


class Window:
    """CPU (``getrusage``: microseconds, all threads) and wall time between
    ``start()`` and ``stop()``."""

    def start(self) -> None:
        self.before, self.started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()

    def stop(self) -> None:
        self.after, self.wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        self.wall -= self.started


def report(name: str, count: int, window: Window, ok: int) -> None:
    user = window.after.ru_utime - window.before.ru_utime
    system = window.after.ru_stime - window.before.ru_stime
    print(
        f"  {name:9s} {(user + system) * 1000 / count:6.3f} ms CPU per request "
        f"(user {user * 1000 / count:.3f}, system {system * 1000 / count:.3f}), "
        f"wall {window.wall:.2f} s, {ok} of {count} answered 200"
    )
    if ok != count:
        raise SystemExit(f"{name}: {count - ok} requests failed")


def tokens(count: int) -> list[str]:
    return [fleet_sync.tokens_for(i)[0] for i in range(count)]


def in_threads(name: str, count: int, concurrency: int, call: Callable[[str], int]) -> None:
    """``call(token)`` (the status) in ``concurrency`` threads; each makes one
    request before the window opens (its client, session and connection)."""
    work: queue.Queue[str] = queue.Queue()
    for token in tokens(count):
        work.put(token)
    warm = tokens(concurrency)
    ready = threading.Barrier(concurrency + 1)
    statuses: list[int] = []

    def worker(first: str) -> None:
        call(first)
        ready.wait()
        while True:
            try:
                token = work.get_nowait()
            except queue.Empty:
                return
            try:
                statuses.append(call(token))
            except Exception as exc:  # counted as a failure, reported below
                statuses.append(0)
                print(f"  {name}: {type(exc).__name__}: {exc}", file=sys.stderr)

    threads = [threading.Thread(target=worker, args=(first,)) for first in warm]
    for thread in threads:
        thread.start()
    window = Window()
    ready.wait()
    window.start()
    for thread in threads:
        thread.join()
    window.stop()
    report(name, count, window, statuses.count(200))


def in_event_loop(name: str, count: int, concurrency: int, make) -> None:
    """``make()`` (in the loop) returns ``(get(token) -> status, close())``, both
    coroutines; one request per worker is made before the window opens."""

    async def main() -> None:
        get, close = await make()
        await asyncio.gather(*(get(token) for token in tokens(concurrency)))
        work, statuses = tokens(count), []

        async def worker() -> None:
            while work:
                statuses.append(await get(work.pop()))

        window = Window()
        window.start()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        window.stop()
        await close()
        report(name, count, window, statuses.count(200))

    asyncio.run(main())


def stdlib_streams(host: str, port: int):
    async def make():
        connections: asyncio.Queue = asyncio.Queue()

        async def get(token: str) -> int:
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
            json.loads(await reader.readexactly(length))
            connections.put_nowait((reader, writer))
            return int(head.split(b" ", 2)[1])

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

        def client_call(token: str) -> int:
            get_client("sim").userinfo(token)  # decoded; an error answer raises
            return 200

        def requests_call(token: str) -> int:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            response = session.get(url, headers={"Authorization": f"Bearer {token}"})
            response.json()
            return response.status_code

        pool = urllib3.PoolManager(maxsize=concurrency)

        def urllib3_call(token: str) -> int:
            response = pool.request("GET", url, headers={"Authorization": f"Bearer {token}"})
            json.loads(response.data)
            return response.status

        in_threads("client", count, concurrency, client_call)
        in_threads("requests", count, concurrency, requests_call)
        in_threads("urllib3", count, concurrency, urllib3_call)
        in_event_loop("asyncio", count, concurrency, stdlib_streams(host, int(port)))
        try:
            import aiohttp
        except ImportError:
            print("  aiohttp   not installed")
        else:

            async def make_aiohttp():
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

                async def get(token: str) -> int:
                    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                        json.loads(await r.read())
                        return r.status

                return get, session.close

            in_event_loop("aiohttp", count, concurrency, make_aiohttp)

            from django_cronofy_conferencing import fleet_http

            async def make_fleet():
                session = fleet_http.new_session(concurrency)
                fetcher = fleet_http.AsyncUserInfo(get_client("sim"), session)

                async def get(token: str) -> int:
                    await fetcher.userinfo(token)  # decoded; an error answer raises
                    return 200

                return get, session.close

            in_event_loop("fleet", count, concurrency, make_fleet)
        try:
            import httpx
        except ImportError:
            print("  httpx     not installed")
        else:

            async def make_httpx():
                client = httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency))

                async def get(token: str) -> int:
                    response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
                    response.json()
                    return response.status_code

                return get, client.aclose

            in_event_loop("httpx", count, concurrency, make_httpx)
        print(f"load average at the end {fleet_sync.load_average():.2f}")
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
