"""A tiny smoke of benchmarks/fleet_sync.py (the real runs are minutes long, not in the suite)."""

from __future__ import annotations

import json

from .conftest import run_benchmark


def test_the_benchmark_runs_a_first_sync_and_a_re_sync(redis_url, tmp_path):
    figures = tmp_path / "figures.json"
    done = run_benchmark(
        "fleet_sync.py",
        "--phases=sqlite",
        "--small=30",
        "--concurrency=4",
        "--latency=0.01",
        f"--sqlite-path={tmp_path / 'bench.sqlite3'}",
        f"--redis-url={redis_url}",
        f"--json={figures}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for label in ("wall time", "ideal", "ratio", "CPU per account", "queries per account"):
        assert label in done.stdout
    assert "peak memory (RSS)" in done.stdout and "load average" in done.stdout
    result = json.loads(figures.read_text())["sqlite"]
    assert result["first"]["synced"] == result["resync"]["synced"] == 30
    assert result["first"]["failed"] == 0 and result["resync"]["http_429"] == 0
    # The re-sync changes nothing: fewer queries than the first sync's writes.
    assert result["resync"]["queries_per_account"] < result["first"]["queries_per_account"]
