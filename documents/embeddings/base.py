"""The contract every embedding provider implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

Vectors = np.ndarray  # float32, shape (n, dimensions), rows L2-normalised

#: Document cosine at or above which two documents count as near-copies, for
#: a model nobody calibrated (see ``EmbeddingProvider.duplicate_threshold``).
DEFAULT_DUPLICATE_THRESHOLD = 0.95


class EmbeddingProviderError(RuntimeError):
    """The provider could not embed (unreachable, rate-limited, bad answer)."""


class EmbeddingProvider(ABC):
    """Turns texts into L2-normalised vectors of a fixed size."""

    #: Identifier stored on every chunk; changing it means re-embedding. It
    #: also names the provider that can embed queries for those chunks
    #: again (``documents.embeddings.embedder_for_model``).
    name: str
    dimensions: int
    #: Longest input, in the provider's own tokens, that is read in full.
    max_tokens: int
    #: Weight of the semantic leg in hybrid search, by query language: a
    #: model that cannot read a language gets no say in its rankings.
    #: Chosen from the evaluation runs (README, "Search quality").
    semantic_weights: dict[str, float]
    #: Document cosine at or above which two documents are flagged as
    #: possible copies. Models spread cosines differently (e5 puts unrelated
    #: texts at 0.8), so each model's value is measured on real near-copies
    #: against distinct documents (README, "Related documents").
    duplicate_threshold: ClassVar[float] = DEFAULT_DUPLICATE_THRESHOLD
    #: Tokens per chunk, title prefix included (0: the model's whole window,
    #: ``max_tokens``). Chosen per model from evaluation: smaller chunks cost
    #: the same per token but give finer passages.
    chunk_tokens: ClassVar[int] = 0
    #: ``chunk_tokens`` for documents of one language (``Document.language``:
    #: ``en``, ``ko``, ``mixed``), where evaluation chose differently per
    #: language; languages not named use ``chunk_tokens``.
    chunk_tokens_by_language: ClassVar[Mapping[str, int]] = {}
    #: How much of each document language's mean direction is taken out of a
    #: query's similarities (0 to 1; see ``search.ranking.backends.semantic.
    #: language_shifts``). Multilingual models put texts of the query's own
    #: language closer than a translation; centring by language, as in
    #: Libovicky et al. (2020), "On the Language Neutrality of Pre-trained
    #: Multilingual Representations", lets the other language compete.
    language_centering: ClassVar[float] = 0.0
    #: Rank related documents by the cosine of their embeddings less the
    #: collection's mean (``search.ranking.centroids.collection_mean``): a
    #: model whose vectors share one large component (anisotropy, Mu and
    #: Viswanath 2018, "All-but-the-Top") ranks neighbours by that
    #: component's noise otherwise.
    related_centering: ClassVar[bool] = False

    def chunk_size(self, language: str = "") -> int:
        """Tokens per chunk, title prefix included, for a document of ``language``."""
        size = self.chunk_tokens_by_language.get(language, self.chunk_tokens)
        return min(size or self.max_tokens, self.max_tokens)

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        """Embed passages, batching internally."""

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query (a 1-D vector)."""
        return self.embed_texts([text])[0]

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts of ``texts`` without special tokens, in one batch."""


def normalise(vectors: np.ndarray) -> Vectors:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms
