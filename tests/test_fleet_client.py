"""CronofyClient sessions read the environment once (proxies, CA bundle), not per request."""

from __future__ import annotations

from django_cronofy_conferencing.client import CronofyClient, new_session


def test_proxies_from_the_environment_are_kept(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = CronofyClient("us")
    assert client.session.proxies["https"] == "http://proxy.internal:3128"
    assert client.session.trust_env is False


def test_no_proxy_is_honoured(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "api-uk.cronofy.com")
    assert new_session("https://api-uk.cronofy.com").proxies == {}
    assert new_session("https://api.cronofy.com").proxies["https"] == "http://proxy.internal:3128"


def test_ca_bundle_from_the_environment(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert new_session("https://api.cronofy.com").verify == str(bundle)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert new_session("https://api.cronofy.com").verify is True


def test_a_given_session_is_used_as_is():
    import requests

    session = requests.Session()
    assert CronofyClient("us", session=session).session is session
    assert session.trust_env is True
