#!/usr/bin/env python
"""A burst of requests at the example project on PostgreSQL: does every one get a page?

    python benchmarks/example_burst.py [--requests 2000] [--concurrency 64]
        [--database-url postgres://postgres@127.0.0.1:5432/cronofy_burst] [--conn-max-age N]

It runs the example project's ``runserver`` (a thread per request) on
PostgreSQL, logs a user in, then asks for the "My conferencing" page
(``/cronofy/``: the session, the user and the page's own queries) that many
times, ``--concurrency`` at a time. It prints the answers by status and the
connections, and exits 1 unless every
answer was a 200.

``--conn-max-age 60`` (``DATABASE_CONN_MAX_AGE``) shows why the project's
default is 0: under ``runserver`` each thread keeps its own connection until
PostgreSQL refuses more (``max_connections``), and those requests are 500s.
The connections are counted while the server still runs.
Not a test: only a tiny smoke of it runs in the suite.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import fleet_sync  # noqa: E402 (the path above)

USERNAME, PASSWORD = "burst", "burst-password-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def open_connections(database_url: str) -> int:
    from urllib.parse import urlsplit

    import psycopg

    name = urlsplit(database_url).path.lstrip("/")
    admin = database_url.replace(f"/{name}", "/postgres", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/cronofy_burst"
    )
    parser.add_argument("--conn-max-age", help="DATABASE_CONN_MAX_AGE (default: the project's)")
    args = parser.parse_args()
    fleet_sync.ensure_database(args.database_url)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "DJANGO_SECRET_KEY": "example-burst-not-secret",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if args.conn_max_age is not None:
        env["DATABASE_CONN_MAX_AGE"] = args.conn_max_age
    manage = [sys.executable, str(ROOT / "example_project" / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)  # noqa: S603
    create_user = (
        "from django.contrib.auth.models import User\n"
        f"User.objects.filter(username={USERNAME!r}).exists() or "
        f"User.objects.create_user({USERNAME!r}, password={PASSWORD!r})"
    )
    subprocess.run(  # noqa: S603
        [*manage, "shell", "-v0", "-c", create_user], env=env, check=True, capture_output=True
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(  # noqa: S603
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        session = requests.Session()
        deadline = time.monotonic() + 60
        while True:
            try:
                page = session.get(f"{base}/accounts/login/", timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the example project did not start") from None
                time.sleep(0.2)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        session.post(
            f"{base}/accounts/login/",
            data={
                "username": USERNAME,
                "password": PASSWORD,
                "csrfmiddlewaretoken": token.group(1) if token else "",
            },
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=30,
        )
        cookies = session.cookies.get_dict()
        if "sessionid" not in cookies:
            raise SystemExit("could not log in to the example project")

        def one(_: int) -> int | str:
            try:
                return requests.get(
                    f"{base}/cronofy/", cookies=cookies, timeout=60, allow_redirects=False
                ).status_code
            except requests.RequestException as exc:
                return type(exc).__name__

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            answers = collections.Counter(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - started
        label = args.conn_max_age if args.conn_max_age is not None else "the default"
        print(
            f"{args.requests} requests, {args.concurrency} at a time, CONN_MAX_AGE {label}: "
            f"{dict(sorted(answers.items(), key=str))} in {wall:.1f} s; load average "
            f"{fleet_sync.load_average():.2f}"
        )
        held = open_connections(args.database_url)
        settle = time.monotonic() + 2  # a request's connection closes as its answer goes out
        while held and time.monotonic() < settle:
            time.sleep(0.1)
            held = open_connections(args.database_url)
        print(f"connections to the database still open after the burst: {held}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    if answers.get(200, 0) != args.requests:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
