"""Who may use the console, and proof that a form came from the console itself.

Two modes (SPEC 4.6), chosen by configuration:
- password users: CONSOLE_USERS is `name:argon2-hash,...`; a login sets a session cookie
  signed with CONSOLE_SECRET_KEY (itsdangerous, with an expiry);
- trusted header: an auth proxy in front of the console sets CONSOLE_TRUSTED_HEADER
  (e.g. X-Forwarded-Email) and only values in CONSOLE_ALLOWED_USERS may enter.

CSRF tokens are signed too, bound to the user, and checked on every POST.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from service.errors import ConfigError
from service.settings import Settings, is_placeholder

SESSION_COOKIE = "console_session"
CSRF_FIELD = "csrf_token"
# A hash verified when the user name is unknown, so a wrong name costs as long as a wrong password.
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def hash_password(password: str) -> str:
    """An argon2id hash (argon2-cffi's defaults, RFC 9106) for CONSOLE_USERS."""
    return _hasher.hash(password)


# name:$argon2id$v=19$m=65536,t=3,p=4$salt$hash - the parameters contain commas themselves
_USER = re.compile(
    r"\s*([^\s,:]+):(\$argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+)\s*(?:,|$)"
)


def parse_users(text: str) -> dict[str, str]:
    """CONSOLE_USERS: a comma list of name:hash."""
    users: dict[str, str] = {}
    position, text = 0, text.strip()
    while position < len(text):
        match = _USER.match(text, position)
        if match is None:
            raise ConfigError(
                "CONSOLE_USERS must be a comma list of name:hash (python -m service console hash-password)"
            )
        users[match.group(1)] = match.group(2)
        position = match.end()
    return users


@dataclass(frozen=True, slots=True)
class Auth:
    """The console's access rules, built once from Settings."""

    secret_key: str
    users: dict[str, str]  # name -> argon2 hash; empty in trusted-header mode
    trusted_header: str | None
    allowed_users: frozenset[str]
    session_max_age_seconds: int
    secure_cookies: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Auth:
        settings.require("console_secret_key", purpose="the console")
        assert settings.console_secret_key is not None
        secret = settings.console_secret_key.get_secret_value()
        if len(secret) < 16:
            raise ConfigError("CONSOLE_SECRET_KEY must be at least 16 characters")
        users_text = settings.console_users.get_secret_value() if settings.console_users else ""
        users = parse_users(users_text)
        header = (settings.console_trusted_header or "").strip() or None
        allowed = frozenset(u.strip() for u in settings.console_allowed_users.split(",") if u.strip())
        if header and users:
            raise ConfigError("set either CONSOLE_USERS or CONSOLE_TRUSTED_HEADER for the console, not both")
        if header and not allowed:
            raise ConfigError("CONSOLE_ALLOWED_USERS is required with CONSOLE_TRUSTED_HEADER")
        if not header and not users:
            raise ConfigError(
                "the console needs CONSOLE_USERS or CONSOLE_TRUSTED_HEADER; nothing is visible anonymously"
            )
        if is_placeholder(secret):
            raise ConfigError("CONSOLE_SECRET_KEY is a placeholder")
        return cls(
            secret, users, header, allowed, settings.console_session_max_age_seconds, settings.console_secure_cookies
        )

    @property
    def uses_passwords(self) -> bool:
        return self.trusted_header is None

    def _signer(self, salt: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret_key, salt=salt)

    def check_password(self, name: str, password: str) -> bool:
        hashed = self.users.get(name)
        try:
            _hasher.verify(hashed or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return False
        return hashed is not None

    def session_cookie(self, name: str) -> str:
        return self._signer("session").dumps({"user": name})

    def user(self, request: Request) -> str | None:
        """The signed-in user of this request, or None."""
        if self.trusted_header is not None:
            value = request.headers.get(self.trusted_header, "").strip()
            return value if value in self.allowed_users else None
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            data = self._signer("session").loads(cookie, max_age=self.session_max_age_seconds)
        except BadSignature:
            return None
        name = data.get("user") if isinstance(data, dict) else None
        return name if isinstance(name, str) and name in self.users else None

    def csrf_token(self, user: str) -> str:
        return str(self._signer("csrf").dumps(user))

    def csrf_ok(self, user: str, token: str | None) -> bool:
        if not token:
            return False
        try:
            owner = self._signer("csrf").loads(token, max_age=self.session_max_age_seconds)
        except BadSignature:
            return False
        return isinstance(owner, str) and hmac.compare_digest(owner.encode(), user.encode())
