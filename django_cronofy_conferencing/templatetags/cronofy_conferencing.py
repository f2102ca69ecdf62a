"""``{% load cronofy_conferencing %}{% cronofy_attention %}``: a banner for the host's layout.

For the logged-in user, a short banner naming each broken conferencing (and
calendar) profile with its relink link, each account to reconnect, and a link
to the "My conferencing" page; nothing at all when all is well, for anonymous
users, and on the page itself (which says it all). Three queries whatever the
number of accounts (``web.attention.user_attention``), only the user's own rows.
Override ``django_cronofy_conferencing/attention.html`` to change its markup.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from ..web.attention import user_attention
from ..wording import words

register = template.Library()

TEMPLATE_ATTENTION = "django_cronofy_conferencing/attention.html"
PAGE_VIEW = "cronofy_conferencing:profiles"


@register.simple_tag(takes_context=True)
def cronofy_attention(context: template.Context) -> str:
    """The banner's HTML for the context's user, or "" when nothing needs them."""
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.view_name == PAGE_VIEW:
        return ""  # the page shows all of it, with every action
    found = user_attention(user)
    if not found:
        return ""
    try:
        page_url = reverse(PAGE_VIEW)
    except NoReverseMatch:  # the browser flow's URLs are not installed
        page_url = ""
    banner: dict[str, Any] = {
        "attention": found,
        "page_url": page_url,
        "words": words(),
        "count": len(found.conferencing) + len(found.calendars) + len(found.accounts_to_reconnect),
    }
    # No request: the host's context processors (and their queries) do not run again.
    return render_to_string(TEMPLATE_ATTENTION, banner)
