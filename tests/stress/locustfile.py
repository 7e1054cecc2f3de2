"""Locust load profile: staff who sign in once, then run hybrid searches.

Run by ``tests/stress/test_load.py``; by hand against ``make run``:

    LOAD_USERNAME=demo LOAD_PASSWORD=demo-password-2026 \\
    .venv/bin/locust -f tests/stress/locustfile.py --host http://127.0.0.1:8000

Each simulated user signs in through the login form, then alternates between
the search page and the JSON API with queries about the demo corpus. Set
``SEARCH_RATE_LIMIT=0`` on the server, or the limiter answers most of these
with 429 (which counts as a failure here).

``LOAD_SAMPLES`` names a file that receives every successful search's
response time in milliseconds, by endpoint (JSON: ``{"/search/": [...],
"/api/search": [...]}``) when locust quits, so the test can compute exact
percentiles (locust's own are rounded to two significant digits).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Final

from locust import HttpUser, between, events, task

#: Realistic questions about the demo corpus, Korean and English (some mixed).
QUERIES: Final = [
    "remote work policy",
    "how many vacation days do employees get",
    "request time off",
    "business travel expenses reimbursement",
    "database failover runbook",
    "PostgreSQL primary failover steps",
    "search outage postmortem",
    "celery worker memory leak",
    "pgvector HNSW ef_search tuning",
    "code review guidelines",
    "API design guidelines pagination",
    "data retention and deletion",
    "information security policy",
    "customer support escalation",
    "new employee onboarding",
    "Q3 OKR results",
    "semantic search spec",
    "deployment rollback",
    "휴가 규정",
    "연차 휴가 신청 방법",
    "복리후생 제도",
    "온콜 근무 가이드",
    "비밀번호 정책",
    "보안 사고 대응 절차",
    "경비 처리 규정",
    "배포 런북 롤백",
    "벡터 검색 성능 튜닝",
    "전사 회의록 2025년 1월",
    "IT 서비스 데스크 자주 묻는 질문",
    "릴리스 노트 12월",
    "Celery 색인 지연 포스트모템",
    "시맨틱 검색 기능 명세",
]
SEARCH_PAGE: Final = "/search/"
SEARCH_API: Final = "/api/search"

_samples: dict[str, list[float]] = {SEARCH_PAGE: [], SEARCH_API: []}


@events.request.add_listener
def _record(request_type: str, name: str, response_time: float, **kwargs: Any) -> None:
    if name in _samples and kwargs.get("exception") is None:
        _samples[name].append(response_time)


@events.quitting.add_listener
def _write_samples(**kwargs: Any) -> None:
    if path := os.environ.get("LOAD_SAMPLES"):
        Path(path).write_text(json.dumps(_samples), encoding="utf-8")


class SearchUser(HttpUser):
    """A staff member searching: a short pause between searches."""

    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        self.client.get("/accounts/login/", name="login page")
        token = self.client.cookies.get("csrftoken", "")
        with self.client.post(
            "/accounts/login/",
            data={
                "username": os.environ.get("LOAD_USERNAME", "demo"),
                "password": os.environ.get("LOAD_PASSWORD", "demo-password-2026"),
                "csrfmiddlewaretoken": token,
                "next": SEARCH_PAGE,
            },
            name="login",
            catch_response=True,
        ) as response:
            if response.status_code != 200 or not response.url.endswith(SEARCH_PAGE):
                response.failure(f"login failed: {response.status_code} at {response.url}")

    @task
    def search_page(self) -> None:
        params = {"q": random.choice(QUERIES), "mode": "hybrid"}
        with self.client.get(
            SEARCH_PAGE, params=params, name=SEARCH_PAGE, catch_response=True
        ) as response:
            if response.status_code != 200 or 'id="results"' not in response.text:
                response.failure(f"search page: {response.status_code} at {response.url}")

    @task
    def search_api(self) -> None:
        params = {"q": random.choice(QUERIES), "mode": "hybrid"}
        with self.client.get(
            SEARCH_API, params=params, name=SEARCH_API, catch_response=True
        ) as response:
            try:
                ok = response.status_code == 200 and "results" in response.json()
            except ValueError:  # Not JSON.
                ok = False
            if not ok:
                response.failure(f"search API: {response.status_code} {response.text[:200]}")
