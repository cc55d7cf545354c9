"""Shop access and refresh tokens, as Shopee issues and rotates them (docs/contract.md#api-calls).

Initial tokens are a pure function of (partner_key, shop_id), so `demo-shops` running in
another process knows them without asking the sandbox. Each refresh issues generation
n+1 (also deterministic), makes the refresh token just used unusable, and lets the old
access token live `grace` seconds more. The book keeps no clock: callers pass `now`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum

from service.signing import hmac_sha256_hex


def token_for(partner_key: str, shop_id: int, generation: int, kind: str) -> str:
    """32 hex characters, like Shopee's tokens."""
    return hmac_sha256_hex(partner_key.encode(), f"sandbox|{kind}|{shop_id}|{generation}".encode())[:32]


def initial_tokens(partner_key: str, shop_id: int) -> tuple[str, str]:
    """The (access_token, refresh_token) a freshly started sandbox holds for `shop_id`."""
    return token_for(partner_key, shop_id, 0, "access"), token_for(partner_key, shop_id, 0, "refresh")


def merchant_id_for(shop_id: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"shopee-sandbox:merchant:{shop_id}")


class AccessCheck(Enum):
    OK = "ok"
    UNKNOWN = "unknown"  # never issued, or issued to another shop -> error_auth
    EXPIRED = "expired"  # -> invalid_acceess_token


class RefreshError(Exception):
    pass


@dataclass(slots=True)
class _Access:
    shop_id: int
    expires_at: float


@dataclass(slots=True)
class _Refresh:
    shop_id: int
    expires_at: float
    used: bool = False


@dataclass(frozen=True, slots=True)
class TokenPair:
    shop_id: int
    access_token: str
    refresh_token: str
    access_expires_at: float
    refresh_expires_at: float


@dataclass(slots=True)
class TokenBook:
    partner_key: str
    issued_at: float  # when the initial tokens count as issued (sandbox start)
    ttl: float
    grace: float
    refresh_ttl: float
    _access: dict[str, _Access] = field(default_factory=dict)
    _refresh: dict[str, _Refresh] = field(default_factory=dict)
    _current: dict[int, TokenPair] = field(default_factory=dict)
    _generation: dict[int, int] = field(default_factory=dict)

    def has_shop(self, shop_id: int) -> bool:
        return shop_id in self._current

    def shops(self) -> list[int]:
        return sorted(self._current)

    def add_shop(self, shop_id: int) -> TokenPair:
        """Create the shop with its initial tokens (no-op when it exists)."""
        if shop_id not in self._current:
            self._issue(shop_id, 0, self.issued_at)
        return self._current[shop_id]

    def set_tokens(self, shop_id: int, access_token: str, refresh_token: str, now: float) -> TokenPair:
        """Replace the shop's pair with one chosen by the caller (e.g. to match a database)."""
        old = self.add_shop(shop_id)
        self._access[old.access_token].expires_at = min(self._access[old.access_token].expires_at, now)
        self._refresh[old.refresh_token].used = True
        pair = TokenPair(shop_id, access_token, refresh_token, now + self.ttl, now + self.refresh_ttl)
        self._access[access_token] = _Access(shop_id, pair.access_expires_at)
        self._refresh[refresh_token] = _Refresh(shop_id, pair.refresh_expires_at)
        self._current[shop_id] = pair
        return pair

    def current(self, shop_id: int) -> TokenPair:
        return self._current[shop_id]

    def check_access(self, shop_id: int, token: str, now: float) -> AccessCheck:
        entry = self._access.get(token)
        if entry is None or entry.shop_id != shop_id:
            return AccessCheck.UNKNOWN
        return AccessCheck.OK if now < entry.expires_at else AccessCheck.EXPIRED

    def refresh(self, shop_id: int, refresh_token: str, now: float) -> TokenPair:
        """Rotate: a new pair; the used refresh token dies; the old access token gets `grace`."""
        entry = self._refresh.get(refresh_token)
        if entry is None or entry.shop_id != shop_id:
            raise RefreshError("Invalid refresh_token.")
        if entry.used:
            raise RefreshError("Invalid refresh_token: it was already used.")
        if now >= entry.expires_at:
            raise RefreshError("Invalid refresh_token: it has expired.")
        entry.used = True
        old = self._current[shop_id]
        old_access = self._access[old.access_token]
        old_access.expires_at = min(old_access.expires_at, now + self.grace)
        old_refresh = self._refresh.get(old.refresh_token)
        if old_refresh is not None:
            old_refresh.used = True
        return self._issue(shop_id, self._generation[shop_id] + 1, now)

    def expire_access(self, shop_id: int, now: float) -> None:
        """Make the shop's current access token expired now (a test convenience)."""
        self._access[self._current[shop_id].access_token].expires_at = now

    def _issue(self, shop_id: int, generation: int, now: float) -> TokenPair:
        pair = TokenPair(
            shop_id=shop_id,
            access_token=token_for(self.partner_key, shop_id, generation, "access"),
            refresh_token=token_for(self.partner_key, shop_id, generation, "refresh"),
            access_expires_at=now + self.ttl,
            refresh_expires_at=now + self.refresh_ttl,
        )
        self._access[pair.access_token] = _Access(shop_id, pair.access_expires_at)
        self._refresh[pair.refresh_token] = _Refresh(shop_id, pair.refresh_expires_at)
        self._current[shop_id] = pair
        self._generation[shop_id] = generation
        return pair
