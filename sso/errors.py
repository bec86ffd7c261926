"""Why a SAML sign-in or sign-out was refused, in words an admin can act on."""


class SignInRefused(Exception):
    """``code`` is a stable snake_case key for logs and the trail; ``reason`` finishes the
    sentence "Sign-in was refused because ..." and never quotes the assertion."""

    def __init__(self, code: str, reason: str, *, status: int = 403, email: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.status = status
        self.email = email
