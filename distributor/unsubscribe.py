"""One-click unsubscribe links (RFC 8058): each address gets a token signed with the web app's secret, so that a
token can be neither forged nor guessed from another."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from itsdangerous import BadSignature, URLSafeSerializer

from distributor import recipients

SALT = "distributor-unsubscribe"


@lru_cache(maxsize=4)
def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})  # HMAC-SHA256


def token(secret: str, address: str) -> str:
    return _serializer(secret).dumps(recipients.key(address))


def address_of(secret: str, value: str) -> str | None:
    """The address a token was made for; None for a forged or damaged one."""
    try:
        found = _serializer(secret).loads(value)
    except BadSignature:
        return None
    return found if isinstance(found, str) else None


def url(base_url: str, secret: str, address: str) -> str:
    return f"{base_url}/u/{token(secret, address)}"
