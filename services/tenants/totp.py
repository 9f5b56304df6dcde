"""TOTP (RFC 6238) for sign-in and step-up, with secrets encrypted by Vault transit.

The secret is encrypted under a derived transit key with the user id as context, so the database
holds only ciphertext and a ciphertext copied onto another user's row does not decrypt. Each accepted
code's time step is remembered: a code is never accepted twice (no replay within its 30 s window).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

import hvac
import pyotp

TOTP_KEY = "tenants-totp"
ISSUER = "Tradebot"
STEP = 30
RECOVERY_CODES = 10


class TotpVault:
    """Encrypts and decrypts TOTP secrets inside Vault; the key never leaves it."""

    def __init__(self, client: hvac.Client) -> None:
        self.transit = client.secrets.transit

    def ensure_key(self) -> None:
        try:
            self.transit.read_key(TOTP_KEY)
        except hvac.exceptions.InvalidPath:
            self.transit.create_key(TOTP_KEY, key_type="aes256-gcm96", derived=True)

    @staticmethod
    def _context(user_id: str) -> str:
        return base64.b64encode(user_id.encode()).decode()

    def encrypt(self, user_id: str, secret: str) -> str:
        plaintext = base64.b64encode(secret.encode()).decode()
        result = self.transit.encrypt_data(TOTP_KEY, plaintext=plaintext, context=self._context(user_id))
        return str(result["data"]["ciphertext"])

    def decrypt(self, user_id: str, ciphertext: str) -> str:
        result = self.transit.decrypt_data(TOTP_KEY, ciphertext=ciphertext, context=self._context(user_id))
        return base64.b64decode(result["data"]["plaintext"]).decode()


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def matching_step(secret: str, code: str, *, after_step: int, now: float | None = None) -> int | None:
    """The time step `code` belongs to (now, or one step either side for clock drift), if it is later
    than `after_step`; None when the code is wrong or already used."""
    code = code.strip()
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP)
    for step in (current, current - 1, current + 1):
        if step > after_step and secrets.compare_digest(totp.at(step * STEP), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]


def digest(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()
