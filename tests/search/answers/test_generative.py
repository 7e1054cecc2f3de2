"""Generated answers against an OpenAI-compatible chat server on loopback."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from django.urls import reverse

from search.answers.models import AnswerLog
from search.answers.services import answer_question, answer_stream
from tests.loopback import JSONHandler, LoopbackServer, serving

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.contrib.auth.models import User
    from django.test import Client
    from pytest_django.fixtures import Settings as SettingsWrapper

    from documents.models import Document

pytestmark = pytest.mark.django_db

QUESTION = "3년 이상 근속하면 연차가 최대 며칠인가요?"


@dataclass
class ChatAPI:
    """What the stand-in chat server was asked, and how it replies."""

    reply: str = "최대 25일입니다 [1]."
    status: int = 200
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)


class ChatHandler(JSONHandler):
    """POST /v1/chat/completions, streamed as server-sent events in two pieces."""

    server: LoopbackServer[ChatAPI]

    def do_POST(self) -> None:
        api = self.server.state
        body = self.read_json()
        api.requests.append({"path": self.path, **body})
        time.sleep(api.delay)
        if api.status != 200:
            self.reply(api.status, {"error": {"message": "overloaded"}})
            return
        with contextlib.suppress(BrokenPipeError):  # The client timed out first.
            self.stream(api, body)

    def stream(self, api: ChatAPI, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        half = len(api.reply) // 2
        for piece in (api.reply[:half], api.reply[half:]):
            event = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def chat_api(settings: SettingsWrapper) -> Iterator[ChatAPI]:
    with serving(ChatHandler, ChatAPI()) as server:
        settings.LLM_MODEL = "test-model"
        settings.LLM_BASE_URL = f"http://127.0.0.1:{server.port}/v1"
        settings.LLM_API_KEY = "sk-test"
        settings.LLM_TIMEOUT = 1.0
        yield server.state


def prompt_of(api: ChatAPI) -> str:
    return "\n".join(m["content"] for m in api.requests[-1]["messages"])


class TestGeneratedAnswer:
    def test_the_request_holds_the_passages_and_the_reply_cites_them(
        self, chat_api: ChatAPI, user: User, vacation: Document
    ) -> None:
        answer = answer_question(QUESTION, user=user)
        request = chat_api.requests[-1]
        assert request["path"] == "/v1/chat/completions"
        assert request["model"] == "test-model" and request["stream"] is True
        assert "[1] 휴가 규정" in prompt_of(chat_api)
        assert QUESTION in prompt_of(chat_api)
        assert "Korean" in request["messages"][0]["content"]
        assert answer.kind == "generated"
        assert answer.text == "최대 25일입니다 [1]."
        assert [c.passage.document_id for c in answer.citations] == [vacation.pk]
        log = AnswerLog.objects.get()
        assert log.kind == "generated" and log.citations[0]["document_id"] == vacation.pk

    def test_a_restricted_passage_never_reaches_the_model(
        self, chat_api: ChatAPI, other_user: User, vacation: Document, secret: Document
    ) -> None:
        answer_question(QUESTION, user=other_user)
        list(answer_stream(QUESTION, user=other_user))
        assert len(chat_api.requests) == 2
        for request in chat_api.requests:
            text = json.dumps(request, ensure_ascii=False)
            assert "임원" not in text and "40일" not in text

    def test_no_answer_reply_is_no_answer(
        self, chat_api: ChatAPI, user: User, vacation: Document
    ) -> None:
        chat_api.reply = "NO_ANSWER"
        answer = answer_question(QUESTION, user=user)
        assert answer.kind == "none" and answer.text == "" and answer.citations == []

    @pytest.mark.parametrize(
        ("status", "delay"), [(500, 0.0), (200, 2.5)], ids=["error", "timeout"]
    )
    def test_errors_and_timeouts_fall_back_to_the_extractive_answer(
        self, chat_api: ChatAPI, user: User, vacation: Document, status: int, delay: float
    ) -> None:
        chat_api.status, chat_api.delay = status, delay
        answer = answer_question(QUESTION, user=user)
        assert answer.kind == "extractive"
        assert "25일" in answer.text
        assert answer.notes and "language model did not answer" in answer.notes[0]

    def test_the_stream_sends_deltas_then_the_card(
        self, chat_api: ChatAPI, client: Client, user: User, vacation: Document
    ) -> None:
        client.force_login(user)
        response = client.get(reverse("search:ask_stream"), {"q": QUESTION})
        assert response.status_code == 200
        body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
        lines = [json.loads(line) for line in body.splitlines()]
        deltas = "".join(line["delta"] for line in lines if "delta" in line)
        assert deltas == chat_api.reply
        assert "최대 25일입니다" in lines[-1]["html"]
        assert f"/documents/{vacation.pk}/?passage=" in lines[-1]["html"]

    def test_the_search_page_streams_the_card_for_a_question(
        self, chat_api: ChatAPI, client: Client, user: User, vacation: Document
    ) -> None:
        client.force_login(user)
        html = client.get(reverse("search:search"), {"q": QUESTION}).content.decode()
        assert 'data-stream-url="/ask/stream?q=' in html
        assert chat_api.requests == []  # The page asks the model only through the stream.
