"""Sandbox service-account keys in Google's JSON key format, and RS256 JWT checks for them."""

import base64
import json
import secrets
from typing import Any
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def new_service_account_key(
    token_uri: str, *, project_id: str = "accesshive-sandbox", name: str = "accesshive"
) -> dict[str, str]:
    """A fresh RSA key laid out like the JSON key the Google Cloud console downloads."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    client_email = f"{name}@{project_id}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": "1" + "".join(str(secrets.randbelow(10)) for _ in range(20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": (
            "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(client_email)
        ),
        "universe_domain": "googleapis.com",
    }


def _private_key(key: dict[str, str]) -> rsa.RSAPrivateKey:
    private_key = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError("service-account keys are RSA keys")
    return private_key


def public_key_of(key: dict[str, str]) -> rsa.RSAPublicKey:
    """The public half of a service-account key, which is all a token endpoint may keep."""
    return _private_key(key).public_key()


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWT, before its signature is checked; ValueError if malformed."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has three segments")
    header, claims = (json.loads(_b64decode(part)) for part in parts[:2])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("JWT header and claims must be objects")
    return header, claims


def verify_rs256(token: str, public_key: rsa.RSAPublicKey) -> bool:
    """Whether the JWT's RS256 signature was made by the private half of public_key."""
    signing_input, _, signature = token.rpartition(".")
    try:
        public_key.verify(
            _b64decode(signature), signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_rs256(key: dict[str, str], claims: dict[str, Any]) -> str:
    """A JWT signed the way google-auth signs a grant assertion, for tests that forge variants."""
    header = {"alg": "RS256", "typ": "JWT", "kid": key["private_key_id"]}
    signing_input = ".".join(
        _b64encode(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = _private_key(key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64encode(signature)}"
