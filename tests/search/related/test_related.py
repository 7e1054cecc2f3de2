"""Related documents: nearest neighbours, visibility, copies and passages."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from search.related import MAX_DUPLICATES, RelatedMethod, related_documents
from tests.factories import make_document

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from documents.models import Document

pytestmark = pytest.mark.django_db

GARDEN = (
    "Tomato plants need full sun, deep watering and a stake to climb. "
    "Prune the side shoots of tomato plants so the fruit ripens."
)


@pytest.fixture
def garden() -> dict[str, Document]:
    return {
        "source": make_document("Growing tomatoes", GARDEN),
        "close": make_document(
            "Tomato care", "Water tomato plants deeply; stake and prune tomato side shoots."
        ),
        "far": make_document(
            "Quarterly tax filing", "Invoices, VAT return deadline, accountant fees."
        ),
        "middle": make_document(
            "Vegetable garden", "Garden beds need full sun; beans climb a stake."
        ),
    }


class TestRelatedDocuments:
    @pytest.mark.parametrize("method", list(RelatedMethod))
    def test_excludes_the_document_itself(
        self, user: User, garden: dict[str, Document], method: RelatedMethod
    ) -> None:
        """A document is never related to itself; every other one is ranked."""
        related = related_documents(user=user, document=garden["source"], k=5, method=method)
        ids = [r.document_id for r in related]
        assert garden["source"].pk not in ids
        assert set(ids) == {garden["close"].pk, garden["far"].pk, garden["middle"].pk}
        assert ids[0] == garden["close"].pk
        assert ids[-1] == garden["far"].pk
        assert all(r.method == method.value for r in related)

    def test_scores_fall_with_rank(self, user: User, garden: dict[str, Document]) -> None:
        """Results are ordered by similarity, highest first, within [-1, 1]."""
        related = related_documents(user=user, document=garden["source"], k=5)
        scores = [r.score for r in related]
        assert scores == sorted(scores, reverse=True)
        assert all(-1.0 <= s <= 1.0 for s in scores)

    def test_k_limits_the_list(self, user: User, garden: dict[str, Document]) -> None:
        """At most k documents come back."""
        related = related_documents(user=user, document=garden["source"], k=1)
        assert [r.document_id for r in related] == [garden["close"].pk]
        assert related_documents(user=user, document=garden["source"], k=0) == []

    def test_passages_explain_the_match(self, user: User, garden: dict[str, Document]) -> None:
        """The best-matching passage of each document comes with the result."""
        related = related_documents(user=user, document=garden["source"], k=1)
        assert "Tomato plants need full sun" in related[0].source_passage
        assert "Water tomato plants deeply" in related[0].related_passage

    def test_unindexed_document_has_no_related(
        self, user: User, garden: dict[str, Document]
    ) -> None:
        """A document without an embedding yet gets an empty list."""
        pending = make_document("Tomato notes", GARDEN, index=False)
        assert pending.embedding is None
        assert related_documents(user=user, document=pending, k=5) == []

    def test_anonymous_user_gets_nothing(self, garden: dict[str, Document]) -> None:
        """Without a user there is nothing to see."""
        assert related_documents(user=None, document=garden["source"], k=5) == []


class TestChunkRefinement:
    def test_one_matching_section_ranks_high_by_chunks(
        self, user: User, garden: dict[str, Document]
    ) -> None:
        """A long document with one section on the topic is found by its best chunk.

        Its mean embedding is diluted by the unrelated sections, so the
        document method ranks it low while the chunk method ranks it first.
        """
        filler = " ".join(
            f"Section {i} lists invoices, ledgers, audits, payroll and accountant fees."
            for i in range(30)
        )
        handbook = make_document("Office handbook", f"{filler}\n\n{GARDEN}")
        assert handbook.chunks.count() > 2
        by_document = related_documents(
            user=user, document=garden["source"], k=5, method=RelatedMethod.DOCUMENT
        )
        by_chunk = related_documents(
            user=user, document=garden["source"], k=5, method=RelatedMethod.CHUNK
        )
        assert by_document[0].document_id == garden["close"].pk
        assert by_chunk[0].document_id == handbook.pk
        assert by_chunk[0].score > by_chunk[1].score
        assert "Prune the side shoots" in by_chunk[0].related_passage


class TestRelatedVisibility:
    @pytest.fixture
    def secret(self, hr_group: Group, garden: dict[str, Document]) -> Document:
        return make_document(
            "Tomato salaries",
            "Tomato plants need full sun, deep watering. Salary of the tomato gardener.",
            groups=[hr_group],
        )

    @pytest.mark.parametrize("method", list(RelatedMethod))
    def test_restricted_document_never_appears_for_outsiders(
        self,
        other_user: User,
        garden: dict[str, Document],
        secret: Document,
        method: RelatedMethod,
    ) -> None:
        """A document of a group the user is not in is not a candidate at all."""
        related = related_documents(user=other_user, document=garden["source"], k=10, method=method)
        assert secret.pk not in [r.document_id for r in related]
        assert len(related) == 3

    def test_restricted_document_appears_for_members(
        self, user: User, hr_group: Group, garden: dict[str, Document], secret: Document
    ) -> None:
        """Group members see the restricted document among the related ones."""
        user.groups.add(hr_group)
        related = related_documents(user=user, document=garden["source"], k=10)
        assert secret.pk in [r.document_id for r in related]

    def test_restricted_source_gives_outsiders_nothing(
        self,
        other_user: User,
        admin_user: User,
        secret: Document,
        garden: dict[str, Document],
    ) -> None:
        """Related documents of a document the user may not see are not revealed."""
        assert related_documents(user=other_user, document=secret, k=5) == []
        assert related_documents(user=admin_user, document=secret, k=5) != []


class TestPossibleDuplicates:
    def test_copies_are_flagged_and_capped(self, user: User, garden: dict[str, Document]) -> None:
        """Copies are flagged; at most MAX_DUPLICATES of them take places in k."""
        copies = [make_document(f"Growing tomatoes (copy {i})", GARDEN) for i in range(4)]
        related = related_documents(user=user, document=garden["source"], k=4)
        flagged = [r for r in related if r.possible_duplicate]
        assert len(flagged) == MAX_DUPLICATES
        assert {r.document_id for r in flagged} <= {c.pk for c in copies}
        assert all(r.score > 0.95 for r in flagged)
        others = [r.document_id for r in related if not r.possible_duplicate]
        assert others == [garden["close"].pk, garden["middle"].pk]
        assert len(related) == 4

    def test_distinct_documents_are_not_flagged(
        self, user: User, garden: dict[str, Document]
    ) -> None:
        """Merely similar documents are recommendations, not copies."""
        related = related_documents(user=user, document=garden["source"], k=5)
        assert [r.possible_duplicate for r in related] == [False, False, False]


class TestQueryCount:
    def test_two_queries_and_hnsw_settings(
        self, user: User, garden: dict[str, Document], django_assert_num_queries: object
    ) -> None:
        """One query reads the source and one statement ranks.

        The other four are the savepoint, its release and the two ``SET
        LOCAL`` HNSW options.
        """
        with django_assert_num_queries(6):  # type: ignore[operator]
            related_documents(user=user, document=garden["source"], k=3)


class TestEvaluationJudgments:
    def test_documents_of_the_same_query_are_related(self) -> None:
        """Each relevant document of a query is related to the query's others."""
        from search.management.commands.eval_related import related_judgments

        qrels = {
            "q1": {"a": 1, "b": 1, "c": 1},
            "q2": {"a": 1, "d": 1},
            "q3": {"e": 1},
            "q4": {"f": 1, "g": 0},
        }
        assert related_judgments(qrels) == {
            "a": {"b": 1, "c": 1, "d": 1},
            "b": {"a": 1, "c": 1},
            "c": {"a": 1, "b": 1},
            "d": {"a": 1},
        }


class TestRelatedOnPageAndApi:
    def test_document_page_lists_related_documents(
        self, client: Client, user: User, garden: dict[str, Document]
    ) -> None:
        """The document page shows related documents with their passages."""
        client.force_login(user)
        response = client.get(f"/documents/{garden['source'].pk}/")
        assert response.status_code == 200
        body = response.content.decode()
        assert "Related documents" in body
        assert f'href="/documents/{garden["close"].pk}/"' in body
        assert "Why related?" in body

    def test_api_returns_scores_and_passages(
        self, client: Client, user: User, garden: dict[str, Document]
    ) -> None:
        """The API lists related documents, best first, with scores and passages."""
        client.force_login(user)
        response = client.get(f"/api/documents/{garden['source'].pk}/related?k=2")
        assert response.status_code == 200
        data = response.json()
        assert data["indexed"] is True
        assert len(data["results"]) == 2
        assert data["results"][0]["document_id"] == garden["close"].pk
        assert data["results"][0]["score"] >= data["results"][1]["score"]
        assert data["results"][0]["related_passage"]
        assert garden["source"].pk not in [r["document_id"] for r in data["results"]]

    @pytest.mark.parametrize("k", ["0", "51", "abc", "-1", ""])
    def test_api_refuses_a_bad_k(
        self, client: Client, user: User, garden: dict[str, Document], k: str
    ) -> None:
        """A malformed k is a 400 with a message."""
        client.force_login(user)
        response = client.get(f"/api/documents/{garden['source'].pk}/related?k={k}")
        assert response.status_code == 400
        assert "k must be" in response.json()["error"]

    def test_restricted_document_is_404_in_the_api(
        self, client: Client, user: User, hr_group: Group
    ) -> None:
        """Related documents of a document the user may not see: 404, no existence leak."""
        secret = make_document("Salary bands", GARDEN, groups=[hr_group])
        client.force_login(user)
        response = client.get(f"/api/documents/{secret.pk}/related")
        assert response.status_code == 404
