"""Errors of the artifact cache."""

from __future__ import annotations


class CredentialSetUnavailable(Exception):
    """A cache rule's credential set names a secret this service cannot resolve (unset, or
    the credential set is gone). The message names the credential set and the secret
    identifier, never the secret."""

    def __init__(self, credential_set: str, secret_uri: str, reason: str) -> None:
        super().__init__(
            f"credential set {credential_set!r}: secret {secret_uri!r} cannot be used: {reason}"
        )
        self.credential_set = credential_set
        self.secret_uri = secret_uri
        self.reason = reason
