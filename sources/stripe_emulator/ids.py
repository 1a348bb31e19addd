"""Stripe-shaped object ids (`cus_1AB...`): a prefix, the account's tag and 14 seeded random characters."""

from __future__ import annotations

import random
from dataclasses import dataclass

_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TO_ALPHABET = bytes(_ALPHABET[i % 62] for i in range(256))  # random bytes -> id characters


@dataclass
class Ids:
    rng: random.Random
    tag: str
    _pool: str = ""  # id characters drawn in bulk (one draw per 4096 ids)
    _at: int = 0

    def new(self, prefix: str) -> str:
        if self._at >= len(self._pool):
            self._pool, self._at = self.rng.randbytes(14 * 4096).translate(_TO_ALPHABET).decode(), 0
        body = self._pool[self._at:self._at + 14]
        self._at += 14
        return f"{prefix}_1{self.tag}{body}"
