"""A deterministic stand-in for a model, for the many tests that do not judge relevance."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Final

import numpy as np

from documents.embeddings.base import EmbeddingProvider, Vectors, normalise

if TYPE_CHECKING:
    from collections.abc import Sequence

_WORD: Final = re.compile(r"\w+", re.UNICODE)


class FakeProvider(EmbeddingProvider):
    """Deterministic hashed bag-of-words vectors, for fast tests.

    Texts sharing words get similar vectors, so ranking tests stay meaningful,
    but it is no language model. ``name`` and ``seed`` make a different
    "model" (its vectors unrelated to the default's), for model switches.
    """

    name = "fake-hash-384"
    dimensions = 384
    max_tokens = 64
    semantic_weights = {"en": 0.5, "ko": 0.5}
    _salt = b""

    def __init__(self, *, name: str = "", seed: int = 0) -> None:
        if name:
            self.name = name
        if seed:
            self._salt = seed.to_bytes(4, "little")

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(self._salt + word.encode("utf-8"), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimensions
                vectors[row, bucket] += 1.0 if digest[4] & 1 else -1.0
            vectors[row, len(text) % self.dimensions] += 0.01  # Never all zero.
        return normalise(vectors)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(text)) + text.count(" ") // 8 for text in texts]
