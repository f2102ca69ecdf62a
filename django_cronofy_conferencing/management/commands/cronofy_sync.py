"""Sync linked Cronofy accounts' conferencing profiles: ``manage.py cronofy_sync``.

By default every due account (``LinkedAccount.objects.due``): active, and
never synced, or last synced more than ``SYNC_CONFIRM_AFTER`` seconds ago when
Cronofy confirmed its push channel within that time, else ``SYNC_STALE_AFTER``;
failing accounts, accounts with a disconnected profile and never synced ones
first (``sync.order``), in the background lane of the rate limit (users' calls
go first). ``--dry-run`` says how many are due for each reason. The summary
warns when an application's budget cannot cover its fleet (``budget_outlook``).
Run it from cron to keep a fleet fresh; with ``--queue`` it only hands the
accounts to ``TASK_QUEUE``'s workers. Accounts are read in chunks and synced by
``--concurrency`` threads under the app-wide rate limit, so memory stays flat
and several copies (on several machines, with a shared cache) stay under
Cronofy's limits together.

Exit status 1 when any account failed. It also prunes the push notification log
(``PushNotification`` rows older than ``PUSH_LOG_DAYS``), and remembers each sweep of
the due accounts (or ``--all``) for ``cronofy_status``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from ...conf import SETTINGS_NAME, app_settings
from ...cronofy.redaction import redact
from ...exceptions import DatabaseConnectionLost
from ...health import record_sweep
from ...models import LinkedAccount, PushNotification
from ...queueing import queue_accounts, queue_enabled
from ...sync.budget import budget_outlook
from ...sync.service import SyncResult, stream_in_sweep_order, sync_accounts
from ..utils import account_id, resolve_user

PROGRESS_INTERVAL = 0.2  # seconds between redraws of the progress line
LIBRARY_LOGGER = "django_cronofy_conferencing"


@contextlib.contextmanager
def one_line_per_failure() -> Iterator[None]:
    """Keep the app's own warnings off the terminal while the command reports failures.

    A project without logging configured for the app would otherwise print each
    failure again through Python's last-resort handler (the sync's warning, the
    token refresh's warning): the command's own line (``-v 2``) is the one.
    With handlers configured, the logs go where the project sends them.
    """
    logger = logging.getLogger(LIBRARY_LOGGER)
    if logger.hasHandlers():
        yield
        return
    quiet = logging.NullHandler()
    logger.addHandler(quiet)
    try:
        yield
    finally:
        logger.removeHandler(quiet)


class Command(BaseCommand):
    help = (
        "Sync the conferencing profiles of linked Cronofy accounts: the due ones by "
        "default (never synced, or older than SYNC_STALE_AFTER), or those selected. "
        "Exits with status 1 when any account failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--account",
            action="append",
            type=account_id,
            default=[],
            dest="accounts",
            metavar="ID",
            help="Sync this account (repeatable), due or not.",
        )
        parser.add_argument(
            "--user",
            action="append",
            default=[],
            dest="users",
            metavar="USER",
            help="Sync the accounts of this user, by username or id (repeatable), due or not.",
        )
        parser.add_argument(
            "--all",
            action="store_true",
            help="Sync every active account, due or not.",
        )
        parser.add_argument(
            "--stale-after",
            type=float,
            metavar="SECONDS",
            help="Due means not synced for this long, push channel or not (default: "
            "SYNC_CONFIRM_AFTER for accounts with a confirmed push channel, else "
            "SYNC_STALE_AFTER). With --account/--user, sync only those of them that are due.",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            metavar="N",
            help="Accounts synced in parallel (default: SYNC_CONCURRENCY).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List the accounts that would be synced; call nothing.",
        )
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Hand the selected accounts to the configured queue (TASK_QUEUE: Celery or "
            "Django's tasks) instead of syncing them here.",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=500,
            metavar="N",
            help="Accounts read from the database at a time (default 500).",
        )

    # -- selection ------------------------------------------------------------

    def _users(self, values: Iterable[str]) -> list:
        return [resolve_user(value) for value in values]

    def select(self, options: dict, now) -> tuple:
        """The queryset to sync, and the explicitly selected accounts that cannot be."""
        ids, users = options["accounts"], self._users(options["users"])
        explicit = bool(ids or users)
        stale_after = options["stale_after"]
        if options["all"] and (explicit or stale_after is not None):
            raise CommandError("--all cannot be combined with --account, --user or --stale-after.")
        if stale_after is not None and stale_after < 0:
            raise CommandError("--stale-after must be zero or more seconds.")
        if ids:
            found = set(LinkedAccount.objects.filter(pk__in=ids).values_list("pk", flat=True))
            missing = sorted(set(ids) - found)
            if missing:
                raise CommandError(
                    "No linked Cronofy account with id " + ", ".join(map(str, missing)) + "."
                )
        if explicit:
            selected = LinkedAccount.objects.filter(Q(pk__in=ids) | Q(user__in=users))
            inactive = list(selected.exclude(status=LinkedAccount.Status.ACTIVE).order_by("pk"))
            if stale_after is not None:
                queryset = selected.due(stale_after, now=now, confirm_after=stale_after)
            else:
                queryset = selected.active()
            return queryset, inactive
        if options["all"]:
            return LinkedAccount.objects.active(), []
        return LinkedAccount.objects.due(stale_after, now=now, confirm_after=stale_after), []

    # -- output ---------------------------------------------------------------

    @staticmethod
    def describe(account: LinkedAccount) -> str:
        return f"{account.pk} ({account.email or account.sub}, {account.data_center})"

    def handle(self, *args, **options) -> None:
        concurrency = options["concurrency"]
        if concurrency is None:
            concurrency = app_settings.SYNC_CONCURRENCY
        if int(concurrency) < 1:
            raise CommandError("--concurrency must be at least 1.")
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1.")
        verbosity = options["verbosity"]
        started = timezone.now()
        queryset, inactive = self.select(options, started)
        for account in inactive:
            self.stderr.write(
                f"Skipped account {self.describe(account)}: {account.status.replace('_', ' ')}."
            )
        if not options["dry_run"]:
            self.prune_push_log(verbosity)
        if options["queue"] and not options["dry_run"]:
            self.queue(queryset, started)
            return
        accounts = stream_in_sweep_order(queryset, chunk_size=options["chunk_size"])
        self.explicit_selection = bool(options["accounts"] or options["users"])
        self.default_selection = not (self.explicit_selection or options["all"])
        self.stale_after = options["stale_after"]
        self.all_accounts = bool(options["all"])
        if options["dry_run"]:
            if self.default_selection:
                self.due_reasons(options["stale_after"], started)
            self.dry_run(accounts)
            self.budget_warnings()
            return
        with one_line_per_failure():
            self.sync(accounts, queryset, int(concurrency), verbosity)

    def prune_push_log(self, verbosity: int) -> None:
        """Delete the push notifications older than PUSH_LOG_DAYS (the push log's keeper)."""
        pruned = PushNotification.objects.prune()
        if pruned and verbosity >= 2:
            self.stdout.write(f"Pruned {pruned} push notifications older than PUSH_LOG_DAYS.")

    def record_sweep(self, report) -> None:
        """A sweep of the due (or all) accounts finished: ``cronofy_status`` shows it."""
        if getattr(self, "default_selection", False) or getattr(self, "all_accounts", False):
            record_sweep("inline", synced=report.synced, failed=report.failed)

    def nothing_to_sync(self) -> str:
        """Why nothing was synced: no account at all, none active (and why: their
        users must connect again), or none due (and how to sync them anyway)."""
        by_status = Counter(LinkedAccount.objects.values_list("status", flat=True))
        linked = sum(by_status.values())
        if linked == 0:
            return "No Cronofy accounts are linked yet."
        active = by_status[LinkedAccount.Status.ACTIVE]
        if active == 0 and not getattr(self, "explicit_selection", False):
            reauthorization = by_status[LinkedAccount.Status.REAUTHORIZATION_REQUIRED]
            revoked = by_status[LinkedAccount.Status.REVOKED]
            return (
                f"Nothing to sync: none of the {linked} linked Cronofy "
                f"{'account' if linked == 1 else 'accounts'} is active "
                f"({reauthorization} {'needs' if reauthorization == 1 else 'need'} "
                f"reauthorization, {revoked} revoked). Their users must connect Cronofy "
                "again; no sync can work until they do."
            )
        if getattr(self, "default_selection", True):
            stale_after = getattr(self, "stale_after", None)
            if stale_after is None:
                seconds, source = app_settings.SYNC_STALE_AFTER, "SYNC_STALE_AFTER"
            else:
                seconds, source = stale_after, "--stale-after"
            return (
                f"0 due of {active} active Cronofy {'account' if active == 1 else 'accounts'} "
                f"({linked} linked): each was synced less than {seconds:g} s ago "
                f"({source}); --all syncs them anyway."
            )
        return (
            f"None of the selected accounts could be synced ({active} active of {linked} linked)."
        )

    def queue(self, queryset, started) -> None:
        if not queue_enabled():
            raise CommandError(
                f"--queue needs a queue: set {SETTINGS_NAME}['TASK_QUEUE'] to 'celery' or 'django'."
            )
        # Each task skips its account if something synced it after this command started.
        count = queue_accounts(queryset, synced_before=started.isoformat())
        noun = "account" if count == 1 else "accounts"
        self.stdout.write(f"Queued {count} Cronofy {noun} for sync ({app_settings.TASK_QUEUE}).")

    def dry_run(self, accounts: Iterable[LinkedAccount]) -> None:
        count = 0
        for account in accounts:
            count += 1
            last = account.last_synced_at.isoformat() if account.last_synced_at else "never"
            self.stdout.write(f"{self.describe(account)}  last synced: {last}")
        noun = "account" if count == 1 else "accounts"
        self.stdout.write(f"Would sync {count} {noun} (dry run: nothing was called).")

    def due_reasons(self, stale_after, now) -> None:
        counts = LinkedAccount.objects.due_counts(stale_after, now, confirm_after=stale_after)
        self.stdout.write(
            f"Due: {counts['never_synced']} never synced, {counts['confirmed_channel']} with a "
            f"confirmed push channel (older than SYNC_CONFIRM_AFTER), "
            f"{counts['no_confirmed_channel']} without (older than SYNC_STALE_AFTER); "
            f"first: {counts['failing']} whose last sync failed, {counts['disconnected']} "
            "with a disconnected profile."
        )

    def budget_warnings(self) -> None:
        """Say so when an application's budget cannot cover its fleet in its windows."""
        for outlook in budget_outlook():
            if not outlook.covered:
                self.stderr.write(
                    self.style.WARNING(
                        f"Warning: the fleet falls behind: {outlook.describe()} Raise the "
                        "limit with Cronofy (then RATE_LIMITS), confirm push channels "
                        "(cronofy_channels --repair) or lengthen SYNC_STALE_AFTER."
                    )
                )

    def sync(self, accounts, queryset, concurrency: int, verbosity: int) -> None:
        tty = self.stdout.isatty() and verbosity >= 1
        total = queryset.count() if tty else None
        lock = threading.Lock()
        state = {"done": 0, "failed": 0, "drawn": 0.0, "line": False}

        def draw(force: bool = False) -> None:
            now = time.monotonic()
            if not force and now - state["drawn"] < PROGRESS_INTERVAL:
                return
            state["drawn"] = now
            of = f"/{total}" if total is not None else ""
            self.stdout.write(
                f"\rSyncing Cronofy accounts: {state['done']}{of}, {state['failed']} failed ",
                ending="",
            )
            self.stdout.flush()
            state["line"] = True

        def clear_line() -> None:
            if state["line"]:
                self.stdout.write("\r\033[K", ending="")
                state["line"] = False

        def progress(
            account: LinkedAccount, result: SyncResult | None, error: Exception | None
        ) -> None:
            with lock:
                state["done"] += 1
                if error is not None:
                    state["failed"] += 1
                    if verbosity >= 2:
                        clear_line()
                        self.stderr.write(
                            f"Account {self.describe(account)} failed: "
                            f"{type(error).__name__}: {redact(error)}"
                        )
                elif result is None:
                    if verbosity >= 2:
                        clear_line()
                        self.stdout.write(
                            f"Account {self.describe(account)} skipped: synced meanwhile"
                        )
                elif verbosity >= 2:
                    clear_line()
                    change = "changed" if result and result.changed else "unchanged"
                    self.stdout.write(f"Account {self.describe(account)} synced: {change}")
                if tty:
                    draw()

        clock = time.monotonic()
        if tty:
            draw(force=True)
        stopped: DatabaseConnectionLost | None = None
        try:
            report = sync_accounts(
                accounts, concurrency=concurrency, progress=progress, keep_results=False
            )
        except DatabaseConnectionLost as exc:  # the summary of what was done, then why not more
            stopped, report = exc, exc.report
        elapsed = time.monotonic() - clock
        self.record_sweep(report)
        if tty:
            clear_line()
        processed = report.synced + report.failed
        self.budget_warnings()
        if processed == 0 and stopped is None:
            if verbosity >= 1:
                self.stdout.write(self.nothing_to_sync())
            return
        summary = (
            f"Synced {report.synced} of {processed} Cronofy "
            f"{'account' if processed == 1 else 'accounts'} in {elapsed:.1f}s: "
            f"{report.changed} changed, {report.unchanged} unchanged, {report.failed} failed"
        )
        reasons = report.failed_by_reason()
        if reasons:
            summary += " (" + ", ".join(f"{n}: {c}" for n, c in sorted(reasons.items())) + ")"
        if report.reconnects:
            times = "once" if report.reconnects == 1 else f"{report.reconnects} times"
            summary += f"; the database connection dropped {times} and was reopened"
        if report.skipped:
            summary += f", {report.skipped} skipped (synced meanwhile)"
        if verbosity >= 1:
            self.stdout.write(summary + ".")
        if stopped is not None:
            raise CommandError(str(stopped), returncode=1)
        if report.failed:
            raise CommandError(
                f"{report.failed} of {processed} Cronofy accounts failed to sync"
                + ("" if verbosity >= 2 else " (run with -v 2 for the errors)")
                + ".",
                returncode=1,
            )
