"""Link a Cronofy account from tokens you already hold, for one user.

    CRONOFY_ACCESS_TOKEN=... CRONOFY_REFRESH_TOKEN=... \\
        python manage.py cronofy_link --user alice --data-center uk

    printf '%s\\n%s\\n' "$ACCESS" "$REFRESH" | python manage.py cronofy_link --user 42
    echo '{"access_token": "...", "refresh_token": "..."}' | python manage.py cronofy_link --user 42

Tokens are read from the environment or stdin, never from the command line
(where they would land in shell history and the process list), and never
printed. The account's Cronofy id comes from UserInfo.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables

from ...accounts import linking, tokens
from ...conf import app_settings
from ...cronofy.client import get_client
from ...cronofy.datacenters import UnknownDataCenter, get_data_center, get_data_centers
from ...cronofy.redaction import redact, remember_secret
from ...cronofy.tokens import MAX_EXPIRES_IN, TokenSet
from ...cronofy.userinfo import parse_userinfo
from ...exceptions import AccessTokenRejected, CronofyError, InvalidGrant
from ..utils import resolve_user

ENV_ACCESS_TOKEN = "CRONOFY_ACCESS_TOKEN"
ENV_REFRESH_TOKEN = "CRONOFY_REFRESH_TOKEN"
ENV_EXPIRES_IN = "CRONOFY_TOKEN_EXPIRES_IN"
MAX_INPUT = 64 * 1024
_TOKEN = re.compile(r"^[\x21-\x7e]{1,4096}\Z")

ARGV_REFUSED = (
    "Tokens are never read from the command line: they would end up in shell history "
    f"and the process list. Set {ENV_ACCESS_TOKEN} and {ENV_REFRESH_TOKEN}, or pipe them "
    "on stdin (two lines, or JSON with access_token and refresh_token)."
)


class Command(BaseCommand):
    help = (
        "Link a Cronofy account for a user from existing tokens, read from the "
        f"{ENV_ACCESS_TOKEN}/{ENV_REFRESH_TOKEN} environment variables or stdin "
        "(two lines or a JSON object; a prompt on a terminal), then sync its conferencing "
        "profiles. Tokens are never taken from the command line."
    )
    stealth_options = ("stdin",)
    # A short --help: what matters here, not every option Django adds.
    suppressed_base_arguments = {"--version", "--pythonpath", "--no-color", "--force-color"}

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        # No abbreviations: "--acc=<token>" must not silently match an option.
        kwargs.setdefault("allow_abbrev", False)
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        original_error = parser.error

        def error(message: str):
            # argparse quotes stray values ("unrecognized arguments: <token>"): never echo them.
            if any(word in message for word in ("unrecognized", "ambiguous", "invalid choice")):
                message = "unrecognized arguments (not shown). " + ARGV_REFUSED
            return original_error(message)

        parser.error = error  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user", required=True, help="The user to link the account to: username or id."
        )
        parser.add_argument(
            "--data-center",
            dest="data_center",
            default=None,
            help="The account's Cronofy data center id (default: DEFAULT_DATA_CENTER).",
        )
        parser.add_argument(
            "--no-sync",
            action="store_true",
            help="Store the account without syncing its conferencing profiles now.",
        )
        # Caught only to refuse them with a clear message (their values are never shown);
        # not in --help. Any other stray argument is refused by the parser the same way.
        for flag in ("--access-token", "--refresh-token", "--token", "--tokens"):
            parser.add_argument(
                flag,
                dest=f"argv_{flag.strip('-').replace('-', '_')}",
                default=None,
                help=argparse.SUPPRESS,
            )

    @method_decorator(
        sensitive_variables("access_token", "refresh_token", "expires_in", "token_set", "info")
    )
    def handle(self, *args, **options) -> None:
        if args or any(options.get(key) is not None for key in options if key.startswith("argv_")):
            raise CommandError(ARGV_REFUSED)
        user = resolve_user(options["user"])
        dc = self._data_center(options["data_center"])
        access_token, refresh_token, expires_in = self._read_tokens(options.get("stdin"))
        remember_secret(access_token)
        remember_secret(refresh_token)
        try:
            token_set, info = self._identify(dc.id, access_token, refresh_token, expires_in)
            result = linking.link_account(user, dc, token_set, sync=not options["no_sync"])
        except linking.AccountLinkConflict as exc:
            raise CommandError(redact(exc)) from None
        except (CronofyError, ImproperlyConfigured) as exc:
            raise CommandError(f"Could not link the account: {redact(exc)}") from None
        except DatabaseError as exc:
            # Its frames hold what was being written: never shown (--traceback included).
            raise CommandError(
                f"Could not store the account: the database failed ({type(exc).__name__}). "
                "Nothing was linked; run the command again once the database is back."
            ) from None

        account = result.account
        who = account.email or info.email or account.sub
        self.stdout.write(
            self.style.SUCCESS(
                f"{'Linked' if result.created else 'Updated'} Cronofy account {account.sub} "
                f"({redact(who)}, data center {dc.id}) for user {self._user_label(user)}: "
                f"account id {account.pk}."
            )
        )
        if result.sync_result is not None:
            r = result.sync_result
            self.stdout.write(
                f"Synced conferencing profiles: {r.created} added, {r.updated} updated, "
                f"{r.removed} removed, {r.unchanged} unchanged."
            )
        elif result.sync_error is not None:
            self.stderr.write(
                self.style.WARNING(
                    "The account is linked, but the first sync failed: "
                    f"{redact(result.sync_error)} It will be retried by cronofy_sync."
                )
            )

    # -- inputs ---------------------------------------------------------------

    @staticmethod
    def _user_label(user) -> str:
        return f"{user.get_username()} (id {user.pk})"

    def _data_center(self, value: str | None):
        try:
            return get_data_center(value or app_settings.DEFAULT_DATA_CENTER)
        except UnknownDataCenter:
            known = ", ".join(sorted(get_data_centers()))
            raise CommandError(f"Unknown data center {value!r}; choose one of: {known}.") from None

    def _read_tokens(self, stdin=None) -> tuple[str, str, int | None]:
        access = os.environ.get(ENV_ACCESS_TOKEN, "").strip()
        refresh = os.environ.get(ENV_REFRESH_TOKEN, "").strip()
        if access or refresh:
            if not (access and refresh):
                missing = ENV_REFRESH_TOKEN if access else ENV_ACCESS_TOKEN
                raise CommandError(f"{missing} is not set; both tokens are needed.")
            return (
                _checked(access, "access"),
                _checked(refresh, "refresh"),
                _expires_in(os.environ.get(ENV_EXPIRES_IN)),
            )
        stream = stdin if stdin is not None else sys.stdin
        if stream is None:
            raise CommandError(f"No tokens: set {ENV_ACCESS_TOKEN} and {ENV_REFRESH_TOKEN}.")
        if stream.isatty():
            # Interactive: prompt without echo; Ctrl-C leaves quietly (status 130, as shells do).
            try:
                access = getpass.getpass("Cronofy access token: ", stream=sys.stderr).strip()
                refresh = getpass.getpass("Cronofy refresh token: ", stream=sys.stderr).strip()
            except KeyboardInterrupt:
                self.stderr.write("")
                raise SystemExit(130) from None
            except EOFError:
                raise CommandError("No tokens given (end of input at the prompt).") from None
            expires_in = None
        else:
            access, refresh, expires_in = _parse_stdin(stream.read(MAX_INPUT + 1))
        if not access or not refresh:
            raise CommandError(
                "Both an access token and a refresh token are needed (stdin: two lines, "
                "or JSON with access_token and refresh_token)."
            )
        return _checked(access, "access"), _checked(refresh, "refresh"), expires_in

    @method_decorator(sensitive_variables("access", "refresh", "refreshed", "token_set"))
    def _identify(self, dc_id: str, access: str, refresh: str, expires_in: int | None):
        """Learn the account's sub from UserInfo; refresh first if the access token is dead."""
        client = get_client(dc_id)
        scope = ""
        try:
            body = client.userinfo(access)
        except AccessTokenRejected:
            try:
                refreshed = tokens.refresh_tokens(dc_id, refresh, client=client)
            except InvalidGrant:
                raise CommandError(
                    "Cronofy rejected both tokens (access token unknown, refresh token "
                    f"invalid) in data center {dc_id}. Is it the right data center?"
                ) from None
            access, refresh = refreshed.access_token, refreshed.refresh_token
            expires_in = refreshed.expires_in
            scope = refreshed.scope
            body = client.userinfo(access)
        info = parse_userinfo(body)
        token_set = TokenSet(
            access_token=access,
            refresh_token=refresh,
            expires_in=expires_in,
            scope=scope or info.scope,
            sub=info.sub,
        )
        return token_set, info


def _checked(token: str, which: str) -> str:
    """A token is printable ASCII without spaces; the value is never shown."""
    if not _TOKEN.match(token):
        raise CommandError(
            f"The {which} token is not a token (printable ASCII without spaces expected)."
        )
    return token


def _expires_in(value) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise CommandError("expires_in must be a number of seconds.")
    try:
        seconds = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity in the JSON
        raise CommandError("expires_in must be a number of seconds.") from None
    if seconds < 0:
        raise CommandError("expires_in must not be negative.")
    if seconds > MAX_EXPIRES_IN:
        # As for Cronofy's own answers (cronofy.tokens): no access token lives that long.
        raise CommandError(f"expires_in must be at most {MAX_EXPIRES_IN} seconds.")
    return seconds


def _parse_stdin(text: str) -> tuple[str, str, int | None]:
    if len(text) > MAX_INPUT:
        raise CommandError("stdin is too large to hold two tokens.")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            raise CommandError("stdin starts with '{' but is not valid JSON.") from None
        if not isinstance(data, dict):
            raise CommandError("stdin JSON must be an object.")
        access, refresh = data.get("access_token"), data.get("refresh_token")
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise CommandError("stdin JSON needs string access_token and refresh_token.")
        return access.strip(), refresh.strip(), _expires_in(data.get("expires_in"))
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if len(lines) != 2:
        raise CommandError(
            f"stdin must hold two lines (access token, refresh token); got {len(lines)}."
        )
    return lines[0], lines[1], None
