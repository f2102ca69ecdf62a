"""The freshness benchmark's small run (issue 21): its figures are produced and sane.

300 accounts for three virtual hours, push first and with push disabled; no service
needed (in-memory SQLite, a virtual clock), a few seconds each.
"""

from __future__ import annotations

import json

from .conftest import run_benchmark

ARGS = ("--accounts", "300", "--hours", "3", "--sync-now", "200000", "--json")


def figures(*extra: str) -> dict:
    done = run_benchmark("freshness.py", *ARGS, *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_push_first_day_is_measured_and_within_its_goals():
    push = figures()
    assert push["errors"] == []
    assert push["calls"] > 0 and push["calls_per_day"] == round(push["calls"] * 8)
    assert set(push["calls_by_endpoint"]) >= {"userinfo", "token", "list_channels"}
    assert 0 < push["budget_share"] <= 0.6
    assert push["max_calls_in_a_minute"] <= 500  # the limiter held at the server
    assert push["oldest_confirmation_s"]["relied"] <= push["confirmation_window_s"]
    to_row = push["disconnection_to_row_ms"]["push"]
    assert to_row["count"] >= 1 and 0 < to_row["p50"] <= to_row["p99"] < 5000
    waits = push["user_wait_behind_sweeps_ms"]
    assert waits["count"] >= 1 and waits["p99"] < push["user_lane_slot_ms"]
    assert push["sweeps"] == 36

    polled = figures("--no-push")
    assert polled["errors"] == [] and not polled["push"]
    assert polled["calls_by_endpoint"].get("list_channels", 0) == 0
    # Everything polled hourly, each poll with a token refresh: about 48 calls a day each
    # (the push-first fleet pays for creating the missing channels in these first hours).
    assert polled["calls_per_account_per_day"] > 3 * push["calls_per_account_per_day"]
