"""Fixtures for the example project's tests: one ``manage.py demo`` per module."""

from __future__ import annotations

import re

import pytest
import requests

from tests.example_project.demo_server import DemoServer, start_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoServer:
    server = start_demo(tmp_path_factory.mktemp("demo"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo_auth(demo) -> dict[str, str]:
    """Headers of a logged-in session of the demo user: cookies and the CSRF token.

    (The example project authenticates API calls with the session only, as
    docs/api.md shows.)
    """
    session = requests.Session()
    login_url = f"{demo.url}/accounts/login/"
    page = session.get(login_url, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        login_url,
        data={"username": demo.username, "password": demo.password, "csrfmiddlewaretoken": token},
        headers={"Referer": login_url},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 302, "the demo login failed"
    cookies = session.cookies.get_dict()
    session.close()
    return {
        "Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items()),
        "X-CSRFToken": cookies["csrftoken"],
    }
