"""Generates passwords that satisfy Google's rules and typical IdP policies."""

import secrets
import string

ALPHABET = string.ascii_letters + string.digits + "!#$%&*+-=?@^_"


def generate_password(length: int = 24) -> str:
    """Random, with at least one lower, upper, digit and symbol."""
    while True:
        password = "".join(secrets.choice(ALPHABET) for _ in range(length))
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
            and any(c in "!#$%&*+-=?@^_" for c in password)
        ):
            return password
