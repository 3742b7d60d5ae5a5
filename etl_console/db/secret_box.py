"""Connection passwords at rest: Fernet tokens (AES-128-CBC + HMAC-SHA256, from `cryptography`).

Keys, newest first, come from ETL_CONNECTION_KEY (comma-separated Fernet keys). A MultiFernet
encrypts with the first and decrypts with any, so a key is rotated by putting a new one in front,
re-encrypting (`etl-console connections rotate-key`), then dropping the old one.

Without ETL_CONNECTION_KEY the key is derived (HKDF-SHA256) from ETL_SECRET_KEY, or else from the
secret file under ETL_DATA_DIR, which every process on one host shares; runners on other hosts then
need the same ETL_SECRET_KEY or ETL_CONNECTION_KEY to read the passwords.
"""
from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_DERIVATION_INFO = b"etl-console connection passwords v1"


class SecretKeyMismatch(Exception):
    """A stored token that none of the configured keys opens (the key changed, or was dropped too soon)."""


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(token)).decode("utf-8")
        except InvalidToken:
            raise SecretKeyMismatch(
                "the stored password cannot be decrypted with ETL_CONNECTION_KEY (or the key derived from "
                "ETL_SECRET_KEY): the key changed; put the old key after the new one, or set the password again"
            ) from None

    def rotate(self, token: bytes) -> bytes:
        """The same secret under the newest key."""
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken:
            raise SecretKeyMismatch("a stored password is not readable with any configured key") from None


def derive_key(secret: str) -> bytes:
    """A Fernet key from an arbitrary secret string (ETL_SECRET_KEY, the data dir's secret)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_INFO).derive(secret.encode("utf-8"))
    return base64.urlsafe_b64encode(raw)


def parse_keys(raw: str) -> list[bytes]:
    keys = [item.strip().encode("ascii") for item in raw.split(",") if item.strip()]
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"ETL_CONNECTION_KEY entry {number} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from None
    return keys


def box_for(config) -> SecretBox:
    """The SecretBox of this deployment's settings (cached: building one costs a key derivation)."""
    return _box(config.connection_key, config.secret_key, config.data_dir)


@functools.lru_cache(maxsize=8)
def _box(connection_key: str | None, secret_key: str | None, data_dir: str) -> SecretBox:
    if connection_key:
        return SecretBox(parse_keys(connection_key))
    if secret_key:
        return SecretBox([derive_key(secret_key)])
    from .source_login import local_password

    import time

    # The same file app.py signs console sessions with when ETL_SECRET_KEY is unset; a process that
    # created it a moment ago may not have written it yet.
    for _ in range(50):
        secret = local_password(data_dir, "secret_key")
        if secret:
            return SecretBox([derive_key(secret)])
        time.sleep(0.02)
    raise RuntimeError(f"the secret file under {data_dir} is empty; set ETL_CONNECTION_KEY")
