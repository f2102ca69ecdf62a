#!/usr/bin/env python
"""Fleet sync benchmark: cronofy_sync against the HTTP simulator, a first sync and a re-sync.

    python benchmarks/fleet_sync.py                  # every phase (about 8 minutes)
    python benchmarks/fleet_sync.py --phases small   # some of: small, large, sqlite, rate, workers

Each phase seeds a fleet, serves it from the simulator (a process of its own)
and syncs it twice, each time in a fresh process: the *first sync* (every
account's details change: one write per account) and the *re-sync* (the same
payloads again: nothing changes but the sync stamps). For each it prints wall
time, the ideal (accounts x latency / concurrency), their ratio, the sync
process's CPU per account, database queries per account, peak memory (RSS) of
the sync process, and the load average (1 min, ``/proc/loadavg``) at its start
and end: the machine is shared, so compare ratios measured under the same load.

- small: 2,000 accounts, concurrency 32, 100 ms latency, PostgreSQL.
- large: the same with 20,000 accounts (memory and queries must not grow).
- sqlite: the small fleet on SQLite (a file).
- rate: Cronofy's default limit (50/s, 500/m) shared through Redis, for 70 s.
- workers: four worker processes (Celery on Redis; Django's tasks with
  django-tasks-db's ``db_worker``) sync one fleet through the shared 500/m
  limit (``benchmarks/fleet_workers.py``).

Targets: ratio <= 1.15 for both passes at 2,000 and 20,000 accounts; peak
memory within 10% between 2,000 and 20,000. CPU per account is stated, and
compared with a baseline (``--baseline FILE``: the ``--json`` of a run of the
base commit), not a target: at Cronofy's 500 requests a minute a millisecond
per account is a fraction of a percent of one core.

Needs PostgreSQL (``--database-url``, default postgres://postgres@127.0.0.1:5432/
cronofy_bench, created if missing) and Redis (``--redis-url``, default
redis://127.0.0.1:6379/14). Not a test: only a tiny smoke of it runs in the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GENEROUS = "100000/s"
DEFAULT_LIMITS = "50/s,500/m"
TOKEN_LIFETIME = 10**7  # seconds: no refresh during a run


# -- the deterministic fleet: the same accounts in the simulator and the database ----


def sub_for(i: int) -> str:
    return f"acc_bench{i:07d}"


def tokens_for(i: int) -> tuple[str, str]:
    return f"bench-access-{i:07d}-0123456789abcdef", f"bench-refresh-{i:07d}-0123456789abcdef"


def profiles_for(sim, i: int) -> list[dict]:
    profiles = [sim.profile("zoom", profile_id=f"pro_z{i:07d}", profile_name=f"u{i}@zoom")]
    if i % 2:
        profiles.append(
            sim.profile(
                "ms_teams",
                profile_id=f"pro_t{i:07d}",
                profile_name=f"u{i}@teams",
                connected=i % 4 != 1,
            )
        )
    return profiles


def seed_simulator(sim, count: int) -> None:
    for i in range(count):
        account = sim.add_account(
            sub=sub_for(i), data_center="sim", conferencing_profiles=profiles_for(sim, i)
        )
        del sim.access_tokens[account.access_token]
        del sim.refresh_tokens[account.refresh_token]
        account.access_token, account.refresh_token = tokens_for(i)
        sim.access_tokens[account.access_token] = (account.sub, sim.clock() + TOKEN_LIFETIME)
        sim.refresh_tokens[account.refresh_token] = account.sub


# -- subcommand: serve (the simulator, in a process of its own) -------------------


def serve(args) -> None:
    from django_cronofy_conferencing.testing import HTTPServerAdapter, SimulatedCronofy

    sim = SimulatedCronofy()
    seed_simulator(sim, args.accounts)
    rates = [r for r in args.rate_limits.split(",") if r]
    server = HTTPServerAdapter(sim, "sim", latency=args.latency, rate_limits=rates)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())  # on this, the serving thread
    Path(args.port_file).write_text(str(server.port))
    server.serve_forever()


# -- subcommand: seed (the database, in a process of its own) --------------------


def seed(args) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seed_database(args.accounts)


def seed_database(count: int) -> None:
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount

    tables = [ConferencingProfile._meta.db_table, LinkedAccount._meta.db_table]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (model tables)
    expires = timezone.now() + timedelta(days=30)
    batch = []
    for i in range(count):
        access, refresh = tokens_for(i)
        batch.append(
            LinkedAccount(
                data_center="sim",
                sub=sub_for(i),
                email=f"{sub_for(i)}@example.com",
                access_token=access,
                refresh_token=refresh,
                token_expires_at=expires,
            )
        )
        if len(batch) == 500:
            LinkedAccount.objects.bulk_create(batch)
            batch = []
    LinkedAccount.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


# -- subcommand: run (one sync pass, in a fresh process) ----------------------------


def run(args) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db.backends.signals import connection_created

    from django_cronofy_conferencing.models import LinkedAccount
    from django_cronofy_conferencing.sync import stream_accounts, sync_accounts

    queries = [0]
    lock = threading.Lock()

    def count(execute, sql, params, many, context):
        with lock:
            queries[0] += 1
        return execute(sql, params, many, context)

    connection_created.connect(
        lambda sender, connection, **kwargs: connection.execute_wrappers.append(count),
        weak=False,
    )
    LinkedAccount.objects.exists()  # connect; the baseline includes Django and a connection
    baseline_kb = rss_kb()
    queries[0] = 0
    times_before = os.times()
    cpu_before = sum(times_before[:2])
    load_start = load_average()
    started = time.perf_counter()
    summary = ""
    if args.seconds:
        deadline = time.monotonic() + args.seconds

        def until_deadline(accounts):
            for account in accounts:
                if time.monotonic() >= deadline:
                    return
                yield account

        accounts = until_deadline(stream_accounts(LinkedAccount.objects.active()))
        report = sync_accounts(accounts, concurrency=args.concurrency, keep_results=False)
        synced, failed = report.synced, report.failed
    else:
        import io

        out = io.StringIO()
        call_command(
            "cronofy_sync", "--all", f"--concurrency={args.concurrency}", stdout=out, stderr=out
        )
        summary = out.getvalue().strip()
    wall = time.perf_counter() - started
    times_after = os.times()
    fetched_by = "threads"
    load_end = load_average()
    if not args.seconds:
        synced = LinkedAccount.objects.filter(last_synced_at__isnull=False).count()
        failed = LinkedAccount.objects.filter(consecutive_failures__gt=0).count()
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": sum(times_after[:2]) - cpu_before,
                "cpu_user": times_after[0] - times_before[0],
                "cpu_system": times_after[1] - times_before[1],
                "synced": synced,
                "failed": failed,
                "queries": queries[0],
                "baseline_kb": baseline_kb,
                "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "load_start": load_start,
                "load_end": load_end,
                "summary": summary,
                "fetched_by": fetched_by,
            }
        )
    )


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def load_average() -> float:
    """The 1-minute load average (``/proc/loadavg``; ``os.getloadavg`` elsewhere)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return os.getloadavg()[0]


# -- the orchestrator -----------------------------------------------------------------


def ensure_database(url: str) -> None:
    from urllib.parse import urlsplit

    if url.startswith("sqlite:"):
        return
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = url.replace(f"/{name}", "/postgres", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Simulator:
    """The simulator server process for one phase."""

    def __init__(self, accounts: int, latency: float, rate_limits: str, env: dict) -> None:
        self.port_file = Path(tempfile.mkdtemp()) / "port"
        self.process = subprocess.Popen(  # noqa: S603 (this script, trusted arguments)
            [
                sys.executable,
                __file__,
                "serve",
                f"--accounts={accounts}",
                f"--latency={latency}",
                f"--rate-limits={rate_limits}",
                f"--port-file={self.port_file}",
            ],
            env=env,
        )
        deadline = time.monotonic() + 120
        while not self.port_file.exists() or not self.port_file.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the simulator did not start")
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{self.port_file.read_text()}"
        self.cpu_start = process_cpu_seconds(self.process.pid)

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_sim/stats?arrivals=1", timeout=30) as r:  # noqa: S310
            data = json.load(r)
        data["cpu"] = process_cpu_seconds(self.process.pid) - self.cpu_start
        return data

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def subcommand(name: str, env: dict, *args: str, profile: str = "") -> str:
    """Run this script's subcommand ``name`` in a fresh process; its standard output.

    ``profile``: a file for py-spy's collapsed stacks of that process (``--py-spy``).
    """
    command = [sys.executable, __file__, name, *args]
    if profile:
        command = [
            "py-spy",
            "record",
            "--gil",
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            profile,
            "--",
            *command,
        ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"the {name} process failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def phase(
    name: str,
    *,
    accounts: int,
    concurrency: int,
    latency: float,
    rate_limits: str,
    database_url: str,
    seconds: float = 0,
    passes: tuple[str, ...] = ("first", "resync"),
    env: dict,
    py_spy: str = "",
) -> dict[str, dict]:
    """Seed ``accounts``, serve them, and sync them once per pass: {pass: result}."""
    print(
        f"\n== {name}: {accounts:,} accounts, concurrency {concurrency}, "
        f"latency {latency * 1000:.0f} ms, rate limit {rate_limits}, "
        f"{database_url.split(':')[0]} (load average {load_average():.2f}) ==",
        flush=True,
    )
    env = {**env, "BENCH_DATABASE_URL": database_url, "BENCH_RATE_LIMITS": rate_limits}
    subcommand("seed", env, f"--accounts={accounts}")
    clear_cache(env)
    simulator = Simulator(accounts, latency, rate_limits, env)
    results: dict[str, dict] = {}
    try:
        env = {**env, "BENCH_SIM_URL": simulator.url}
        served, simulator_cpu = 0, 0.0
        for name_of_pass in passes:
            extra = [f"--seconds={seconds}"] if seconds else []
            profile = f"{py_spy}/{name}-{name_of_pass}.txt" if py_spy else ""
            out = subcommand("run", env, f"--concurrency={concurrency}", *extra, profile=profile)
            result = json.loads([x for x in out.splitlines() if x.startswith("{")][-1])
            stats = simulator.stats()
            result["server"] = {
                **stats,
                "served": stats["served"] - served,
                "cpu": stats["cpu"] - simulator_cpu,
            }
            served, simulator_cpu = stats["served"], stats["cpu"]
            results[name_of_pass] = result
    finally:
        simulator.stop()
    return results


def clear_cache(env: dict) -> None:
    import redis

    prefix = env["BENCH_CACHE_PREFIX"]
    client = redis.Redis.from_url(env["BENCH_REDIS_URL"])
    keys = list(client.scan_iter(f"*{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


def report_pass(name: str, result: dict, accounts: int, concurrency: int, latency: float) -> dict:
    ideal = accounts * latency / concurrency
    server = result["server"]
    figures = {
        "accounts": accounts,
        "synced": result["synced"],
        "failed": result["failed"],
        "wall_s": round(result["wall"], 2),
        "ideal_s": round(ideal, 2),
        "ratio": round(result["wall"] / ideal, 3),
        "cpu_ms_per_account": round(result["cpu"] * 1000 / accounts, 3),
        "queries_per_account": round(result["queries"] / accounts, 3),
        "peak_rss_mb": round(result["peak_kb"] / 1024, 1),
        "baseline_rss_mb": round(result["baseline_kb"] / 1024, 1),
        "sync_cpu_s": round(result["cpu"], 2),
        "simulator_cpu_s": round(server["cpu"], 1),
        "http_requests": server["served"],
        "http_429": server["rate_limited"],
        "load_start": result["load_start"],
        "load_end": result["load_end"],
        "fetched_by": result.get("fetched_by", "?"),
    }
    print(f"  -- {name}: {result['summary']}")
    print(f"  fetched by           {result.get('fetched_by', '?')}")
    print(f"  wall time            {figures['wall_s']:8.2f} s")
    print(f"  ideal                {figures['ideal_s']:8.2f} s  (accounts x latency / concurrency)")
    print(f"  ratio                {figures['ratio']:8.3f}    (target <= 1.15)")
    print(
        f"  CPU per account      {figures['cpu_ms_per_account']:8.3f} ms "
        f"(sync process: {figures['sync_cpu_s']:.2f} s; simulator {figures['simulator_cpu_s']} s)"
    )
    print(
        f"  queries per account  {figures['queries_per_account']:8.3f}    "
        f"({result['queries']:,} queries)"
    )
    print(
        f"  peak memory (RSS)    {figures['peak_rss_mb']:8.1f} MB "
        f"(after Django and a connection: {figures['baseline_rss_mb']:.1f} MB)"
    )
    print(f"  load average         {figures['load_start']:8.2f} -> {figures['load_end']:.2f}")
    print(f"  HTTP requests        {server['served']:8d}  (429 answers: {server['rate_limited']})")
    return figures


def report_rate(result: dict, seconds: float) -> dict:
    from django_cronofy_conferencing.testing import max_in_window

    server = result["server"]
    arrivals = sorted(server["arrivals"])
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    per_minute_limit, per_second_limit = 500, 50
    busiest_minute = max_in_window(arrivals, 60.0)
    busiest_second = max_in_window(arrivals, 1.0)
    achieved = (len(arrivals) - 1) / span if span else 0.0
    limit = per_minute_limit / 60
    figures = {
        "seconds": round(span, 1),
        "requests": len(arrivals),
        "achieved_per_s": round(achieved, 3),
        "limit_per_s": round(limit, 3),
        "share_of_limit": round(achieved / limit, 3),
        "busiest_60s": busiest_minute,
        "busiest_1s": busiest_second,
        "http_429": server["rate_limited"],
        "failed": result["failed"],
        "load_start": result["load_start"],
        "load_end": result["load_end"],
    }
    print(f"  requests             {len(arrivals):8d} over {span:.1f} s")
    print(
        f"  achieved rate        {achieved:8.3f} /s   (limit 500/m = {limit:.3f}/s: "
        f"{achieved / limit:.1%} of it; target 90% to 100%)"
    )
    print(f"  busiest 60 s window  {busiest_minute:8d}     (limit {per_minute_limit})")
    print(f"  busiest 1 s window   {busiest_second:8d}     (limit {per_second_limit})")
    print(f"  429 answers          {server['rate_limited']:8d}")
    print(f"  load average         {result['load_start']:8.2f} -> {result['load_end']:.2f}")
    return figures


PASSES = ("first", "resync")


def cpu_against(results: dict, baseline: dict | None) -> list[str]:
    """CPU per account of each pass beside the baseline's (stated, not a target)."""
    lines = []
    for name in ("small", "large", "sqlite"):
        for p in PASSES:
            figures = results.get(name, {}).get(p)
            base = (baseline or {}).get(name, {}).get(p)
            if figures and base:
                cpu, before = figures["cpu_ms_per_account"], base["cpu_ms_per_account"]
                lines.append(
                    f"{name} {p}: {cpu} ms/account, baseline {before} ({cpu / before:.0%})"
                )
    return lines


def verdicts_for(results: dict, baseline: dict | None) -> list[tuple[str, bool]]:
    verdicts = []
    for name in ("small", "large", "sqlite"):
        for p in PASSES:
            if p in results.get(name, {}):
                figures = results[name][p]
                verdicts.append(
                    (
                        f"{name} {p}: ratio {figures['ratio']} <= 1.15 "
                        f"(load {figures['load_start']} -> {figures['load_end']})",
                        figures["ratio"] <= 1.15,
                    )
                )
    if "small" in results and "large" in results:
        for p in PASSES:
            small, large = results["small"].get(p), results["large"].get(p)
            if not (small and large):
                continue
            growth = large["peak_rss_mb"] / small["peak_rss_mb"] - 1
            results.setdefault("memory_growth", {})[p] = round(growth, 4)
            verdicts.append(
                (
                    f"{p}: peak memory {small['peak_rss_mb']} MB at 2,000 vs "
                    f"{large['peak_rss_mb']} MB at 20,000 ({growth:+.1%}) within 10%",
                    abs(growth) <= 0.10,
                )
            )
            # The same up to the last, partial chunk and batch of each run.
            same = abs(small["queries_per_account"] - large["queries_per_account"]) <= 0.02
            verdicts.append(
                (
                    f"{p}: queries per account {small['queries_per_account']} vs "
                    f"{large['queries_per_account']} (within 0.02)",
                    same,
                )
            )
    if "rate" in results:
        rate = results["rate"]
        verdicts.append(
            (
                f"rate: {rate['share_of_limit']:.1%} of 500/m, busiest minute "
                f"{rate['busiest_60s']} <= 500, busiest second {rate['busiest_1s']} <= 50, "
                f"{rate['http_429']} x 429",
                0.9 <= rate["share_of_limit"] <= 1.0
                and rate["busiest_60s"] <= 500
                and rate["busiest_1s"] <= 50
                and rate["http_429"] == 0,
            )
        )
    for kind, figures in results.get("workers", {}).items():
        verdicts.append(
            (
                f"workers ({kind}): {figures['share_of_limit']:.1%} of 500/m (>= 95%), "
                f"{figures['http_429']} x 429, {figures['synced_twice']} synced twice, "
                f"{figures['duplicate_rows']} duplicate rows",
                figures["share_of_limit"] >= 0.95
                and figures["http_429"] == 0
                and figures["synced_twice"] == 0
                and figures["duplicate_rows"] == 0,
            )
        )
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--accounts", type=int, required=True)
    p_serve.add_argument("--latency", type=float, default=0.1)
    p_serve.add_argument("--rate-limits", default="")
    p_serve.add_argument("--port-file", required=True)
    p_seed = sub.add_parser("seed")
    p_seed.add_argument("--accounts", type=int, required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--concurrency", type=int, default=32)
    p_run.add_argument("--seconds", type=float, default=0)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cronofy_bench"
        ),
    )
    parser.add_argument(
        "--sqlite-path",
        default=str(Path(tempfile.gettempdir()) / "cronofy_bench.sqlite3"),
        help="The SQLite file of the sqlite phase.",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument("--phases", default="small,large,sqlite,rate,workers")
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rate-seconds", type=float, default=70)
    parser.add_argument("--worker-seconds", type=float, default=75)
    parser.add_argument("--py-spy", default="", help="a folder for py-spy profiles of each pass")
    parser.add_argument("--baseline", help="a --json file of the base commit's run to compare")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    if args.command in ("serve", "seed", "run"):
        {"serve": serve, "seed": seed, "run": run}[args.command](args)
        return

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "BENCH_DATABASE_URL": args.database_url,
        "BENCH_REDIS_URL": args.redis_url,
        "BENCH_CACHE_PREFIX": f"cronofy-bench-{uuid.uuid4().hex[:8]}",
    }
    os.environ.update(env)
    phases = args.phases.split(",")
    if set(phases) - {"sqlite"}:
        ensure_database(args.database_url)
    sqlite_url = f"sqlite:///{Path(args.sqlite_path).resolve()}"
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{load_average():.2f}; database {args.database_url}"
    )
    results: dict[str, dict] = {}
    sizes = {"small": args.small, "large": args.large, "sqlite": args.small}
    for name in ("small", "large", "sqlite"):
        if name not in phases:
            continue
        count = sizes[name]
        passes = phase(
            name,
            accounts=count,
            concurrency=args.concurrency,
            latency=args.latency,
            rate_limits=GENEROUS,
            database_url=sqlite_url if name == "sqlite" else args.database_url,
            env=env,
            py_spy=args.py_spy,
        )
        results[name] = {
            p: report_pass(p, r, count, args.concurrency, args.latency) for p, r in passes.items()
        }
    if "rate" in phases:
        result = phase(
            "rate",
            accounts=2000,
            concurrency=args.concurrency,
            latency=args.latency,
            rate_limits=DEFAULT_LIMITS,
            database_url=args.database_url,
            seconds=args.rate_seconds,
            passes=("first",),
            env=env,
        )["first"]
        results["rate"] = report_rate(result, args.rate_seconds)
    if "workers" in phases:
        from benchmarks import fleet_workers

        results["workers"] = fleet_workers.run_all(
            database_url=args.database_url,
            redis_url=args.redis_url,
            seconds=args.worker_seconds,
            env=env,
        )
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    verdicts = verdicts_for(results, baseline)
    print(f"\n== targets (load average now {load_average():.2f}) ==")
    for text, ok in verdicts:
        print(f"  {'met    ' if ok else 'MISSED '} {text}")
    for line in cpu_against(results, baseline):
        print(f"  CPU     {line}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
