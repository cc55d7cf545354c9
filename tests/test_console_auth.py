"""Console access without services: nothing is visible anonymously, every POST needs CSRF.

The guard runs before any page touches Postgres or Kafka, so these tests build the app
without its lifespan (no connections) and hit every route.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from argon2 import PasswordHasher
from starlette.routing import Route
from starlette.testclient import TestClient

from service.console.app import create_app
from service.console.auth import SESSION_COOKIE, Auth
from service.errors import ConfigError
from tests.conftest import ROOT
from tests.console_helpers import PASSWORD, USER, console_settings

OPEN_PATHS = {"/healthz", "/metrics", "/login"}
SAMPLE_PARAMS = {"{partition:int}": "0", "{offset:int}": "0", "{job_id:int}": "1", "{shop_id}": "100001"}


def guarded_routes() -> list[tuple[str, str]]:
    app = create_app(console_settings())
    found = []
    for route in app.routes:
        if not isinstance(route, Route) or route.path in OPEN_PATHS:
            continue
        path = route.path
        for param, value in SAMPLE_PARAMS.items():
            path = path.replace(param, value)
        found += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def client(**overrides: object) -> TestClient:
    return TestClient(create_app(console_settings(**overrides)), follow_redirects=False)


def test_every_page_redirects_to_login_and_every_action_is_401_without_a_session() -> None:
    routes = guarded_routes()
    assert {p for _, p in routes} >= {"/", "/dead-letters", "/shops", "/orders", "/audit", "/dead-letters/replay"}
    c = client()
    for method, path in routes:
        response = c.request(method, path)
        if method == "GET":
            assert response.status_code == 303, (method, path)
            assert response.headers["location"].startswith("/login?next="), path
        else:
            assert response.status_code == 401, (method, path)


def test_a_forged_or_expired_session_cookie_is_not_a_session() -> None:
    c = client(console_session_max_age_seconds=60)
    other = Auth.from_settings(console_settings(console_secret_key="another-secret-key-987654321"))
    c.cookies.set(SESSION_COOKIE, other.session_cookie(USER))
    assert c.get("/").status_code == 303
    c.cookies.set(SESSION_COOKIE, "not-signed")
    assert c.get("/audit").status_code == 303


@pytest.mark.parametrize("token", [None, "", "garbage", "for-another-user"])
def test_a_post_without_the_users_csrf_token_is_403(token: str | None) -> None:
    settings = console_settings()
    auth = Auth.from_settings(settings)
    c = client()
    c.cookies.set(SESSION_COOKIE, auth.session_cookie(USER))
    data = {"scope": "all", "confirm": "yes", "reason": "x"}
    if token == "for-another-user":
        token = auth.csrf_token("mallory")
    if token is not None:
        data["csrf_token"] = token
    for _, path in [r for r in guarded_routes() if r[0] == "POST"]:
        response = c.post(path, data=data)
        assert response.status_code == 403, (path, token)


def test_the_login_form_itself_needs_its_csrf_token() -> None:
    response = client().post("/login", data={"username": USER, "password": PASSWORD})
    assert response.status_code == 403


def test_trusted_header_mode_admits_only_allowed_users_and_has_no_login_page() -> None:
    c = client(console_users=None, console_trusted_header="X-Forwarded-Email", console_allowed_users="ops@example.com")
    assert c.get("/", headers={"X-Forwarded-Email": "intruder@example.com"}).status_code == 401
    assert c.get("/audit").status_code == 401
    assert c.get("/login").status_code == 404
    assert c.post("/dead-letters/replay", headers={"X-Forwarded-Email": "ops@example.com"}).status_code == 403


def test_healthz_is_open() -> None:
    assert client().get("/healthz").text == "ok\n"


@pytest.mark.parametrize(
    "overrides",
    [
        {"console_users": None},  # neither mode
        {"console_secret_key": None},
        {"console_secret_key": "short"},
        {"console_users": "alice:plaintext"},
        {"console_trusted_header": "X-Forwarded-Email"},  # both modes
        {"console_users": None, "console_trusted_header": "X-Forwarded-Email"},  # no allow-list
    ],
)
def test_bad_console_configuration_stops_start_up(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        create_app(console_settings(**overrides))


def test_hash_password_prints_an_argon2_hash_of_the_piped_password() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service", "console", "hash-password"],
        input=b"s3cret-passphrase\n",
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    hashed = done.stdout.decode().strip()
    assert hashed.startswith("$argon2id$")
    assert PasswordHasher().verify(hashed, "s3cret-passphrase")
    assert b"s3cret" not in done.stdout


def test_check_password_rejects_a_wrong_password_and_an_unknown_user() -> None:
    auth = Auth.from_settings(console_settings())
    assert auth.check_password(USER, PASSWORD)
    assert not auth.check_password(USER, PASSWORD + "x")
    assert not auth.check_password("bob", PASSWORD)
