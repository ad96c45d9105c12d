"""Signing keys for the services tests start in-process, made once per worker and reused.

A new service makes its first RS256 key at start (`transship.identity.tokens.new_signing_key`,
~50 ms of CPU), and most tests start a service of their own: hundreds per worker. The pool
makes its first `size` keys with the product's own function and then hands them out again
in turn, so consecutive keys always differ (a rotation gets a key other than the one it
retires) and a service keeps distinct keys unless it makes more than `size` of them. A test
marked ``fresh_signing_keys`` gets keys made for it (``tests/conftest.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import rsa

KeyMaker = Callable[[], rsa.RSAPrivateKey]


class SigningKeyPool:
    """Up to `size` keys made by `make`, handed out round robin; thread-safe (services make
    keys on a thread)."""

    def __init__(self, make: KeyMaker, size: int = 16) -> None:
        if size < 2:
            raise ValueError("a pool of fewer than 2 keys would hand a rotation its old key")
        self._make = make
        self._size = size
        self._keys: list[rsa.RSAPrivateKey] = []
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> rsa.RSAPrivateKey:
        """The next key: a new one while the pool is not full, else the oldest handed out."""
        with self._lock:
            if len(self._keys) < self._size:
                self._keys.append(self._make())
                return self._keys[-1]
            key = self._keys[self._next]
            self._next = (self._next + 1) % self._size
            return key
