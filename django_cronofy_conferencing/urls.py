"""Browser flow: ``path("cronofy/", include("django_cronofy_conferencing.urls"))``."""

from django.urls import path

from .web import notifications, pages, views

app_name = "cronofy_conferencing"

urlpatterns = [
    # The end-user page "My conferencing" (pages.py) and its actions.
    path("", pages.profiles, name="profiles"),
    path("accounts/<int:account_id>/sync/", pages.sync_now, name="sync_now"),
    path("accounts/<int:account_id>/unlink/", pages.unlink, name="unlink"),
    # The relink loop: the open page's section (304 while unchanged), the sync when
    # the user comes back from a Relink tab, and the default profile.
    path("section/", pages.profiles_section, name="profiles_section"),
    path("accounts/<int:account_id>/relinked/", pages.sync_after_relink, name="sync_after_relink"),
    path("accounts/<int:account_id>/preferred/", pages.set_preferred, name="set_preferred"),
    path("connect/", views.connect, name="connect"),
    path("callback/", views.callback, name="callback"),
    path(
        "accounts/<int:account_id>/conferencing/connect/",
        views.conferencing_connect,
        name="conferencing_connect",
    ),
    path(
        "accounts/<int:account_id>/conferencing/return/<str:flow>/",
        views.conferencing_return,
        name="conferencing_return",
    ),
    # Return URLs handed out before the single-use flow value: never sync.
    path(
        "accounts/<int:account_id>/conferencing/return/",
        views.conferencing_return,
        name="conferencing_return_without_flow",
    ),
    path("notifications/", notifications.receive, name="notifications"),
]
