"""Fixtures of the analysts' SQL tests: an analyst role and a corpus with logs and clusters."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from io import StringIO
from typing import TYPE_CHECKING, Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from documents.models import Document
from search.clustering.models import Cluster, ClusteringRun, ClusterMembership
from search.models import SearchQueryLog, SearchResultClick
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.contrib.auth.models import Group, User

PUBLIC_DOCUMENTS = {
    "vectors": (
        "Vector databases",
        "Vector databases store embeddings and answer nearest neighbour queries with HNSW indexes.",
        ["tech"],
    ),
    "engines": (
        "Search engines",
        "Search engines rank documents for a query with BM25 "
        "and with vector search over embeddings.",
        ["tech"],
    ),
    "pasta": (
        "Cooking pasta",
        "Boil salted water and cook the pasta until it is tender.",
        ["food"],
    ),
    "tomatoes": ("Growing tomatoes", "Tomato plants need sun, water and a stake.", ["garden"]),
    "임베딩": ("임베딩 검색", "임베딩은 검색 엔진에서 의미 검색에 사용됩니다.", ["tech"]),
    "벡터": (
        "벡터 데이터베이스",
        "벡터 데이터베이스는 임베딩을 저장하고 가까운 이웃을 찾습니다.",
        ["tech"],
    ),
    "요리": ("파스타 요리", "소금물에 파스타를 삶고 소스를 만듭니다.", ["food"]),
}


@pytest.fixture(scope="module")
def analyst(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """A committed analyst role without groups, so it can also log in.

    Roles belong to the whole server and outlive the tests' transactions:
    the name is unique to this run, and the role is dropped afterwards.
    """
    name = f"test_analyst_{os.getpid()}_{secrets.token_hex(3)}"
    with django_db_blocker.unblock():
        call_command("create_analyst_role", name, "--statement-timeout", "200ms", stdout=StringIO())
    try:
        yield name
    finally:
        with django_db_blocker.unblock():
            call_command("create_analyst_role", name, "--drop", stdout=StringIO())


@pytest.fixture
def corpus(hr_group: Group) -> dict[str, Document]:
    documents = {
        key: make_document(title, text, tags=tags)
        for key, (title, text, tags) in PUBLIC_DOCUMENTS.items()
    }
    documents["secret"] = make_document(
        "Vector search salaries",
        "Confidential: salaries of the vector search team.",
        tags=["hr"],
        groups=[hr_group],
    )
    documents["비밀"] = make_document(
        "임베딩 팀 연봉", "기밀: 임베딩 검색 팀의 연봉.", groups=[hr_group]
    )
    documents["draft"] = make_document("Draft notes", "Not indexed yet.", index=False)
    return documents


@pytest.fixture
def search_logs(corpus: dict[str, Document], user: User) -> list[SearchQueryLog]:
    now = timezone.now()
    specs = [
        ("vector search", "hybrid", 3, 12.0, 0),
        ("vector search", "hybrid", 3, 30.0, 1),
        ("Vector search", "keyword", 2, 8.0, 2),
        ("quantum gravity", "keyword", 0, 5.0, 1),
        ("quantum gravity", "hybrid", 0, 40.0, 3),
        ("임베딩 검색", "semantic", 4, 25.0, 0),
    ]
    logs = []
    for query, mode, count, latency, days_ago in specs:
        log = SearchQueryLog.objects.create(
            user=user,
            query=query,
            mode=mode,
            result_count=count,
            latency_ms=latency,
            created_at=now - timedelta(days=days_ago),
        )
        logs.append(log)
    SearchResultClick.objects.create(search=logs[0], user=user, document=corpus["vectors"], rank=1)
    SearchResultClick.objects.create(search=logs[1], user=user, document=corpus["secret"], rank=2)
    return logs


@pytest.fixture
def clustering(corpus: dict[str, Document]) -> list[Cluster]:
    clusters = []
    for days_ago in (2, 0):
        run = ClusteringRun.objects.create(
            status=ClusteringRun.Status.DONE,
            document_count=4,
            algorithm="kmeans",
            k=2,
            created_at=timezone.now() - timedelta(days=days_ago),
        )
        members = {
            0: [corpus["vectors"], corpus["engines"], corpus["secret"]],
            1: [corpus["pasta"], corpus["요리"]],
        }
        if days_ago == 0:
            members = {
                0: [corpus["vectors"], corpus["secret"]],
                1: [corpus["pasta"], corpus["요리"], corpus["engines"]],
            }
        for number, documents in members.items():
            cluster = Cluster.objects.create(
                run=run,
                number=number,
                label=f"label {number}",
                terms=["t"],
                size=len(documents),
                cohesion=0.5,
                representatives=[d.pk for d in documents],
            )
            clusters.append(cluster)
            for document in documents:
                ClusterMembership.objects.create(
                    run=run, cluster=cluster, document=document, distance_to_centroid=0.1
                )
    return clusters
