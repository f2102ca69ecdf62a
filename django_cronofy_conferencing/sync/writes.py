"""The sync's writes: one account's validated payload, or a batch of them, in one
transaction with a fixed number of queries.

Below ``service`` (which fetches, then calls these) and above ``plan`` (which
decides what changes): the same rows and signals whether an account is written
on its own or in a batch. An unchanged payload writes no profile rows; signals
go out after the commit, for real changes only.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, router, transaction
from django.utils import timezone

from ..cronofy.userinfo import UserInfo
from ..db import write_lock
from ..models import CalendarProfile, ConferencingProfile, LinkedAccount
from .plan import CALENDAR_PROFILE_UPDATE_FIELDS, PROFILE_UPDATE_FIELDS, Plan, SyncResult
from .plan import plan as _plan

__all__ = ["apply_userinfo", "apply_userinfo_many", "update_accounts"]

# What a sync may write on the account besides its stamps (last_synced_at, ...): each
# plan names those it writes (a section left as stored writes none of its own).
ACCOUNT_DETAIL_FIELDS = (
    "email",
    "name",
    "zoneinfo",
    "account_type",
    "scope",
    "userinfo",
    "sync_warnings",
)


def apply_userinfo(account: LinkedAccount, info: UserInfo) -> SyncResult:
    """Write a validated payload in one transaction with a fixed number of queries."""
    using = router.db_for_write(ConferencingProfile)
    now = timezone.now()
    plan: Plan | None = None
    try:
        with write_lock(using), transaction.atomic(using=using):
            plan = _apply_one(account, info, using, now)
            if plan is None:
                return SyncResult()  # unlinked while the request was in flight
    except BaseException:
        if plan is not None:
            plan.restore()
        raise
    plan.report()
    return plan.result


def _apply_one(account: LinkedAccount, info: UserInfo, using: str, now) -> Plan | None:
    """``apply_userinfo``'s queries, inside its transaction (None: the account is gone)."""
    # No ORDER BY on either query: nothing depends on the order, and
    # compiling and sorting it is a measurable share of a fleet sync.
    locked = list(
        LinkedAccount.objects.using(using)
        .select_for_update()
        .filter(pk=account.pk)
        .values_list("pk", flat=True)[:1]
    )
    if not locked:
        return None
    existing = {
        p.profile_id: p
        for p in ConferencingProfile.objects.using(using).filter(account_id=account.pk).order_by()
    }
    calendars = {
        p.profile_id: p
        for p in CalendarProfile.objects.using(using).filter(account_id=account.pk).order_by()
    }
    plan = _plan(account, info, existing, now, calendars)
    if plan.to_create:
        ConferencingProfile.objects.using(using).bulk_create(plan.to_create)
    if plan.to_update:
        ConferencingProfile.objects.using(using).bulk_update(plan.to_update, PROFILE_UPDATE_FIELDS)
    _write_calendar_profiles(using, plan.calendars_to_create, plan.calendars_to_update)
    LinkedAccount.objects.using(using).filter(pk=account.pk).update(**plan.account_fields)
    plan.adopt()
    transaction.on_commit(plan.send, using=using)
    return plan


def apply_userinfo_many(items: Sequence[tuple[LinkedAccount, UserInfo]]) -> list[SyncResult]:
    """``apply_userinfo`` for several accounts in one transaction: the same rows, the
    same signals, in a fixed number of queries whatever the number of accounts and
    profiles (what lets ``sync_accounts`` keep up with many threads of HTTP calls).

    The accounts are locked in primary-key order, so concurrent batches never
    deadlock. An account deleted meanwhile gets an empty ``SyncResult``. Each
    account may appear once. Any error rolls back the whole batch.
    """
    if len({account.pk for account, _ in items}) != len(items):
        raise ValueError("apply_userinfo_many: an account appears twice in the batch.")
    using = router.db_for_write(ConferencingProfile)
    now = timezone.now()
    pks = [account.pk for account, _ in items]
    plans: list[Plan] = []
    try:
        with write_lock(using), transaction.atomic(using=using):
            locked = set(
                LinkedAccount.objects.using(using)
                .select_for_update()
                .filter(pk__in=pks)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            existing: dict[int, dict[str, ConferencingProfile]] = {pk: {} for pk in locked}
            for profile in (
                ConferencingProfile.objects.using(using).filter(account_id__in=locked).order_by()
            ):
                existing[profile.account_id][profile.profile_id] = profile
            calendars: dict[int, dict[str, CalendarProfile]] = {pk: {} for pk in locked}
            for profile in (
                CalendarProfile.objects.using(using).filter(account_id__in=locked).order_by()
            ):
                calendars[profile.account_id][profile.profile_id] = profile
            plans[:] = [
                _plan(account, info, existing[account.pk], now, calendars[account.pk])
                for account, info in items
                if account.pk in locked
            ]
            to_create = [p for plan in plans for p in plan.to_create]
            to_update = [p for plan in plans for p in plan.to_update]
            if to_create:
                ConferencingProfile.objects.using(using).bulk_create(to_create)
            if to_update:
                ConferencingProfile.objects.using(using).bulk_update(
                    to_update, PROFILE_UPDATE_FIELDS
                )
            _write_calendar_profiles(
                using,
                [p for plan in plans for p in plan.calendars_to_create],
                [p for plan in plans for p in plan.calendars_to_update],
            )
            # Accounts whose details changed (every account on a first sync) share
            # one UPDATE ... FROM (VALUES ...) (``update_accounts``); the others (the
            # usual case) one UPDATE of the sync stamps.
            # Plans that leave a section as stored write fewer fields: one statement per
            # set of fields (at most a few sets, whatever the number of accounts).
            stamped: list[int] = []
            detailed: dict[tuple[str, ...], list[Plan]] = {}
            for plan in plans:
                if all(
                    getattr(plan.account, name) == value
                    for name, value in plan.account_fields.items()
                    if name in ACCOUNT_DETAIL_FIELDS
                ):
                    stamped.append(plan.account.pk)
                else:
                    detailed.setdefault(tuple(plan.account_fields), []).append(plan)
                plan.adopt()
            for group in detailed.values():
                update_accounts(using, [(plan.account.pk, plan.account_fields) for plan in group])
            if stamped:
                LinkedAccount.objects.using(using).filter(pk__in=stamped).update(
                    last_synced_at=now, last_sync_error="", consecutive_failures=0, updated_at=now
                )

            def send() -> None:
                for plan in plans:
                    plan.send()

            transaction.on_commit(send, using=using)
    except BaseException:
        for plan in plans:  # rolled back: the account objects say what is stored again
            plan.restore()
        raise
    for plan in plans:
        plan.report()
    results = {plan.account.pk: plan.result for plan in plans}
    return [results.get(account.pk, SyncResult()) for account, _ in items]


def _write_calendar_profiles(
    using: str, to_create: list[CalendarProfile], to_update: list[CalendarProfile]
) -> None:
    """Bulk writes beside the conferencing ones (Django batches them under SQLite's
    999-parameter limit; the batch size bounds the rows, the calendars ride in JSON)."""
    if to_create:
        CalendarProfile.objects.using(using).bulk_create(to_create, batch_size=CALENDAR_BATCH)
    if to_update:
        CalendarProfile.objects.using(using).bulk_update(
            to_update, CALENDAR_PROFILE_UPDATE_FIELDS, batch_size=CALENDAR_BATCH
        )


# Calendar profile rows per bulk statement: 12 columns x 80 rows stays under 999
# parameters, and 80 rows of calendars JSON keep each statement a reasonable size.
CALENDAR_BATCH = 80


def update_accounts(using: str, rows: Sequence[tuple[int, dict[str, object]]]) -> None:
    """Write each account's ``fields`` (the same names in every row) in one statement
    per ``max_query_params`` worth of rows: ``UPDATE ... FROM (VALUES ...)`` on
    PostgreSQL and SQLite (3.33+). Not ``bulk_update``: its CASE WHEN per field
    and row cost more to compile than the rest of a batch's writes together.
    """
    if not rows:
        return
    connection = connections[using]
    opts = LinkedAccount._meta
    names = list(rows[0][1])
    fields = [opts.get_field(name) for name in names]
    qn = connection.ops.quote_name
    postgres = connection.vendor == "postgresql"

    def column(i: int, field) -> str:
        value = f"v.column{i + 2}"
        return f"CAST({value} AS {field.db_type(connection)})" if postgres else value

    assignments = ", ".join(
        f"{qn(field.column)} = {column(i, field)}" for i, field in enumerate(fields)
    )
    table, pk = qn(opts.db_table), qn(opts.pk.column)
    width = len(fields) + 1
    limit = connection.features.max_query_params or 999
    per_statement = max(1, min(len(rows), limit // width))
    placeholder = "(" + ", ".join(["%s"] * width) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[object] = []
            for pk_value, values in chunk:
                params.append(pk_value)
                params.extend(
                    field.get_db_prep_save(values[name], connection)
                    for name, field in zip(names, fields, strict=True)
                )
            values_sql = ", ".join([placeholder] * len(chunk))
            id_column = "CAST(v.column1 AS bigint)" if postgres else "v.column1"
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM (VALUES {values_sql}) AS v "  # noqa: S608
                f"WHERE {table}.{pk} = {id_column}",
                params,
            )
