"""A process that refreshes one account's token, for tests/accounts/test_refresh_processes.py.

    python -m tests.accounts.refresh_process setup        # create the account: prints its id
    python -m tests.accounts.refresh_process refresh <id> [--in-transaction] [--busy-timeout S]

The database (``DATABASE_URL``) and the simulated Cronofy (``CRONOFY_SIM_API_URL``)
come from the environment, as ``tests/settings.py`` reads them. ``refresh``
prints ``ready`` once Django is set up and waits for a line on stdin, so the
test starts every process's refresh at once; it prints the outcome (a hash of
the access token it ended with, or the error's class). With
``--in-transaction`` the refresh runs inside ``transaction.atomic()``, which
stays open (the tokens stored, not committed) until a second line arrives.
``--busy-timeout`` sets how long SQLite waits for another connection's lock.
"""

from __future__ import annotations

import hashlib
import os
import sys
from datetime import timedelta


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from django_cronofy_conferencing.accounts.tokens import refresh_access_token
    from django_cronofy_conferencing.models import LinkedAccount

    if argv[0] == "setup":
        account = LinkedAccount.objects.create(
            data_center="sim",
            sub=os.environ["SIM_SUB"],
            access_token=os.environ["SIM_ACCESS_TOKEN"],
            refresh_token=os.environ["SIM_REFRESH_TOKEN"],
            token_expires_at=timezone.now() - timedelta(minutes=1),
        )
        print(account.pk)
        return 0

    if "--busy-timeout" in argv:
        timeout = float(argv[argv.index("--busy-timeout") + 1])
        connection.close()
        connection.settings_dict["OPTIONS"] = {
            **connection.settings_dict["OPTIONS"],
            "timeout": timeout,
        }
    account = LinkedAccount.objects.get(pk=int(argv[1]))
    in_transaction = "--in-transaction" in argv
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        if in_transaction:
            with transaction.atomic():
                token = refresh_access_token(account)
                print("stored", flush=True)
                sys.stdin.readline()
        else:
            token = refresh_access_token(account)
    except Exception as exc:
        print(f"error {type(exc).__name__}", flush=True)
        return 1
    print(f"token {hashlib.sha256(token.encode()).hexdigest()[:16]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
