"""Unlinking from the admin: revoke the grant at Cronofy first, then delete.

A plain delete would leave the grant alive at Cronofy, so the changelist's
"Unlink" action and the change form's "Unlink (revoke at Cronofy)" both go
through ``linking.unlink``; when Cronofy cannot be reached nothing is deleted.
"""

from __future__ import annotations

import copy

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import csrf_protect_m
from django.contrib.admin.utils import model_ngettext, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..accounts import linking
from ..conf import app_settings
from ..db import non_atomic_requests
from ..exceptions import CronofyError, CronofyUnavailable, RateLimited
from ..fields import KEYS_SETTING
from ..models import LinkedAccount
from .common import account_label


class UnlinkMixin:
    """The "Unlink" action, its confirmation page, and the change form's unlink."""

    unlink_confirmation_template = (
        "admin/cronofy_conferencing/linkedaccount/unlink_selected_confirmation.html"
    )

    def _report_error(self, request, message: str, account: LinkedAccount, exc) -> None:
        """An error message naming the account (as written: messages start with a word, as
        the admin capitalises their first letter) and the (redacted) error."""
        from ..cronofy.redaction import redact

        self.message_user(
            request,
            message % {"account": account_label(account), "error": redact(exc)},
            messages.ERROR,
        )

    @admin.action(description=_("Unlink (revoke at Cronofy, then delete)"), permissions=["delete"])
    def unlink(self, request, queryset):
        limit = int(app_settings.ADMIN_SYNC_MAX_ACCOUNTS)
        accounts = list(queryset)
        if len(accounts) > limit:
            self.message_user(
                request,
                gettext(
                    "%(count)d accounts selected: the admin unlinks at most %(limit)d at a time."
                )
                % {"count": len(accounts), "limit": limit},
                messages.ERROR,
            )
            return None
        if not request.POST.get("post"):
            return self._unlink_confirmation(request, accounts)
        for account in accounts:
            self._unlink_one(request, account)
        return None

    def _unlink_confirmation(self, request, accounts):
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Unlink Cronofy accounts"),
            "subtitle": None,
            "objects_name": str(model_ngettext(opts, len(accounts))),
            "queryset": accounts,
            "opts": opts,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.unlink_confirmation_template, context)

    def _unlink_one(self, request, account: LinkedAccount) -> bool:
        """Revoke and delete one account; report the outcome. True when it is gone."""
        snapshot = copy.copy(account)  # delete() clears the pk the log entry needs
        try:
            revoked = linking.unlink(account)
        except (CronofyUnavailable, RateLimited) as exc:
            self._report_error(
                request,
                gettext(
                    "Not unlinked: Cronofy could not be reached to revoke the access of "
                    "%(account)s, so nothing was deleted. Try again later. (%(error)s)"
                ),
                account,
                exc,
            )
            return False
        except CronofyError as exc:
            self._report_error(
                request, gettext("Not unlinked: %(account)s: %(error)s"), account, exc
            )
            return False
        self.log_deletions(request, [snapshot])
        if revoked:
            self.message_user(
                request,
                gettext("Unlinked %(account)s: access revoked at Cronofy, account deleted.")
                % {"account": account_label(snapshot)},
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                gettext(
                    "Deleted %(account)s, but its access could not be revoked at Cronofy: its "
                    "stored token cannot be decrypted with any key in %(setting)s. The user "
                    "can remove the application in their Cronofy account."
                )
                % {"account": account_label(snapshot), "setting": KEYS_SETTING},
                messages.WARNING,
            )
        return True

    def _url(self, name: str, *args) -> str:
        opts = self.model._meta
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_{name}",
            args=args,
            current_app=self.admin_site.name,
        )

    @non_atomic_requests  # revokes at Cronofy: no request transaction
    @csrf_protect_m
    def delete_view(self, request, object_id, extra_context=None):
        """The change form's "Unlink (revoke at Cronofy)": the unlink confirmation (not
        Django's delete page, which would refuse: profiles cannot be deleted by hand), then
        revoke at Cronofy first and delete."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return super().delete_view(request, object_id, extra_context)  # Django's 404 path
        if not self.has_delete_permission(request, obj):
            raise PermissionDenied
        if request.method != "POST":
            return self._unlink_confirmation(request, [obj])
        if self._unlink_one(request, obj):
            return HttpResponseRedirect(self._url("changelist"))
        return HttpResponseRedirect(self._url("change", obj.pk))
