"""The vault's errors, sorted into the job engine's transient and permanent kinds.

Messages name the secret by its reference (``vault:identities/42/password#3``) and say what the
vault answered; they never carry a secret value, a token or key material.
"""

from jobs.errors import JobError, PermanentError, TransientError


class VaultError(JobError):
    """Base class of every error the vault raises."""


class VaultUnavailable(VaultError, TransientError):
    """The vault could not be reached or answered 5xx/429: retrying later may succeed."""


class VaultPermissionDenied(VaultError, PermanentError):
    """The vault refused our credentials (bad token, failed AppRole login, missing policy)."""


class VaultConflict(VaultError, PermanentError):
    """A check-and-set write found another version than the one the caller expected."""


class SecretNotFound(VaultError, PermanentError):
    """The path, or the requested version of it, does not exist or was deleted."""


class VaultRequestRejected(VaultError, PermanentError):
    """The vault rejected the request for another reason (bad path, unsupported call, TLS)."""


class VaultDecryptionError(VaultError, PermanentError):
    """A stored ciphertext cannot be decrypted: altered, moved, or its key is not configured."""
