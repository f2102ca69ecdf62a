"""Browser flow: ``path("cronofy/", include("django_cronofy_conferencing.urls"))``."""

from django.urls import path

from . import notifications, views

app_name = "cronofy_conferencing"

urlpatterns = [
    path("connect/", views.connect, name="connect"),
    path("callback/", views.callback, name="callback"),
    path(
        "accounts/<int:account_id>/conferencing/connect/",
        views.conferencing_connect,
        name="conferencing_connect",
    ),
    path(
        "accounts/<int:account_id>/conferencing/return/",
        views.conferencing_return,
        name="conferencing_return",
    ),
    path("notifications/", notifications.receive, name="notifications"),
]
