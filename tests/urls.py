from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path

#: A host's page with the banner in its layout (tests/test_templatetags.py, tests/browser).
HOST_PAGE = """{% load cronofy_conferencing %}<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>A host page</title>
</head>
<body>
  <header><p>A host site</p></header>
  <main>
    {% cronofy_attention %}
    <h1>A host page</h1>
    <p>The host's own content.</p>
  </main>
</body>
</html>
"""


def host_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(engines["django"].from_string(HOST_PAGE).render({}, request))


urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("cronofy/", include("django_cronofy_conferencing.urls")),
    path("api/cronofy/", include("django_cronofy_conferencing.api.urls")),
    path("host/", host_page, name="host_page"),
]
