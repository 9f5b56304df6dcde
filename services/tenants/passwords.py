"""Password hashing (Argon2id) and the strength rules a new password must pass.

Parameters: 64 MiB of memory, 3 passes, 4 lanes. On the reference machine one hash costs well over
50 ms (see bench/tenants.py), which makes offline guessing against a stolen hash expensive while a
login stays fast enough. Hashes carry their parameters, so raising them later only needs
`needs_rehash` at the next login.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.common.errors import InvalidArgument

HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
MIN_LENGTH = 12
MAX_LENGTH = 128  # Argon2 takes any length; the cap stops a megabyte "password" from being a DoS.

# The most common passwords long enough to pass the length rule (breach corpora top entries).
_COMMON = {
    "123456789012",
    "password1234",
    "qwertyuiopas",
    "qwerty123456",
    "iloveyou1234",
    "passwordpassword",
    "1q2w3e4r5t6y",
    "administrator",
    "letmein12345",
    "welcome12345",
    "trustno1trustno1",
    "changeme1234",
    "bitcoinbitcoin",
}

# A hash of a random string: verifying against it for unknown emails makes their failures cost the
# same time as real ones, so response times do not tell which emails have accounts.
_DUMMY = HASHER.hash("dummy password that no one has")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password[:MAX_LENGTH])
    except (VerificationError, InvalidHashError):
        return False


def burn_time(password: str) -> None:
    verify_password(_DUMMY, password)


def check_strength(password: str, *, email: str, display_name: str = "") -> None:
    """Raise InvalidArgument(field="password") naming the first rule the password breaks."""
    if len(password) < MIN_LENGTH:
        raise InvalidArgument(f"must be at least {MIN_LENGTH} characters long", field="password")
    if len(password) > MAX_LENGTH:
        raise InvalidArgument(f"must be at most {MAX_LENGTH} characters long", field="password")
    classes = sum(
        bool(re.search(pattern, password)) for pattern in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^a-zA-Z0-9]")
    )
    if classes < 3 and len(password) < 20:
        raise InvalidArgument(
            "must mix at least three of lower case, upper case, digits and symbols, or be at least 20 "
            "characters long",
            field="password",
        )
    lowered = password.lower()
    if lowered in _COMMON or re.fullmatch(r"(.{1,4})\1+", lowered):
        raise InvalidArgument("is too common or too repetitive", field="password")
    for personal in (email.split("@", maxsplit=1)[0], display_name):
        if len(personal) >= 3 and personal.lower() in lowered:
            raise InvalidArgument("must not contain your email name or display name", field="password")
