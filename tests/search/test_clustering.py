"""The clustering report: pure math, the run task, its edge cases and the admin."""

from __future__ import annotations

import csv
import datetime
import io
import random
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone
from sklearn.metrics import adjusted_rand_score

from documents.models import Document
from search.clustering import algorithms as clustering
from search.clustering.algorithms import DriftKind
from search.clustering.models import Cluster, ClusteringRun, ClusterMembership
from search.clustering.selectors import clustering_inputs, clustering_report
from search.clustering.services import (
    CLUSTERING_TIME_LIMIT,
    clustering_run_execute,
    clustering_run_queue,
    clustering_runs_reap,
)
from search.clustering.tasks import clustering_run as clustering_run_task
from search.related.duplicates import near_duplicate_pairs
from tests.factories import make_document

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.contrib.auth.models import Group
    from django.test import Client

pytestmark = pytest.mark.django_db

TOPICS: dict[str, list[str]] = {
    "garden": [
        "tomato",
        "garden",
        "compost",
        "seedling",
        "soil",
        "prune",
        "harvest",
        "greenhouse",
        "mulch",
        "watering",
        "orchard",
        "fertiliser",
    ],
    "finance": [
        "invoice",
        "budget",
        "ledger",
        "audit",
        "payroll",
        "accountant",
        "expense",
        "revenue",
        "quarterly",
        "taxation",
        "dividend",
        "balance",
    ],
    "space": [
        "telescope",
        "galaxy",
        "planet",
        "orbit",
        "nebula",
        "comet",
        "asteroid",
        "starlight",
        "eclipse",
        "observatory",
        "satellite",
        "cosmos",
    ],
}


def blobs(
    centres: int, per: int = 40, dims: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs around random unit directions."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(centres, dims))
    points = np.vstack([d + rng.normal(scale=0.15, size=(per, dims)) for d in directions])
    return points, np.repeat(np.arange(centres), per)


def topic_text(topic: str, rng: random.Random) -> str:
    return " ".join(rng.choices(TOPICS[topic], k=14)) + "."


@pytest.fixture
def topic_documents() -> dict[str, list[Document]]:
    """Thirty small indexed documents, ten per topic."""
    rng = random.Random(7)
    return {
        topic: [
            make_document(
                f"{words[i % len(words)].title()} {words[(i + 3) % 12]}",
                topic_text(topic, rng),
                tags=["corpus"],
            )
            for i in range(10)
        ]
        for topic, words in TOPICS.items()
    }


def run_now(created_by: User | None = None, **options: Any) -> ClusteringRun:
    """Queue a run and execute it eagerly after the commit."""
    run = clustering_run_queue(run=ClusteringRun(created_by=created_by, **options))
    clustering_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


# --- Pure functions -----------------------------------------------------------


class TestKMeans:
    def test_recovers_well_separated_blobs(self) -> None:
        """k-means with the true k finds the blobs exactly."""
        points, truth = blobs(4)
        result = clustering.kmeans(points, 4)
        assert adjusted_rand_score(truth, result.labels) == 1.0
        assert result.sizes() == [40, 40, 40, 40]
        assert result.silhouette is not None and result.silhouette > 0.5

    def test_auto_k_picks_the_true_k(self) -> None:
        """The automatic choice keeps the k with the best silhouette: the true one."""
        points, truth = blobs(5, per=30)
        result = clustering.auto_kmeans(points, k_min=2, k_max=9)
        assert result.k == 5
        assert sorted(result.silhouettes) == list(range(2, 10))
        assert max(result.silhouettes, key=result.silhouettes.__getitem__) == 5
        assert adjusted_rand_score(truth, result.labels) == 1.0

    def test_clusters_are_numbered_largest_first(self) -> None:
        """Cluster 0 is the largest; centroids are unit vectors."""
        rng = np.random.default_rng(1)
        a, b = rng.normal(size=(2, 32))
        points = np.vstack(
            [a + rng.normal(scale=0.1, size=(10, 32)), b + rng.normal(scale=0.1, size=(30, 32))]
        )
        result = clustering.kmeans(points, 2)
        assert result.sizes() == [30, 10]
        assert np.allclose(np.linalg.norm(result.centroids, axis=1), 1.0, atol=1e-5)

    def test_cohesion_and_representatives(self) -> None:
        """Cohesion is the mean cosine to the centroid; representatives are nearest it."""
        points, _ = blobs(3)
        result = clustering.kmeans(points, 3)
        assert all(0.9 < c <= 1.0 for c in result.cohesion())
        for number, members in enumerate(result.representatives(n=3)):
            assert len(members) == 3
            own = result.distances[result.labels == number]
            assert result.distances[members[0]] == pytest.approx(own.min())

    def test_more_clusters_than_points_is_refused(self) -> None:
        """Asking for more clusters than points says so."""
        with pytest.raises(ValueError, match="3 documents cannot form 5 clusters"):
            clustering.kmeans(np.eye(3, 8), 5)


class TestHDBSCAN:
    def test_finds_blobs_and_outliers(self) -> None:
        """Dense blobs become clusters; isolated points are noise."""
        points, truth = blobs(3, per=30, dims=16)
        rng = np.random.default_rng(5)
        strays = rng.normal(size=(4, 16)) * 3
        result = clustering.hdbscan(np.vstack([points, strays]), min_cluster_size=10)
        assert result.k == 3
        assert adjusted_rand_score(truth, result.labels[:90]) == 1.0
        assert np.all(np.isnan(result.distances[result.labels == clustering.NOISE]))


class TestProjection:
    def test_two_coordinates_per_point_and_centroid(self) -> None:
        """PCA gives every document and centroid an (x, y)."""
        points, _ = blobs(3)
        result = clustering.kmeans(points, 3)
        xy, centres = clustering.project_2d(points, result.centroids)
        assert xy.shape == (120, 2)
        assert centres is not None and centres.shape == (3, 2)


class TestClassTfidf:
    def test_picks_distinctive_words(self) -> None:
        """Words common to every cluster lose to each cluster's own words."""
        texts = [
            "report tomato garden report",
            "report tomato soil",
            "report garden tomato",
            "report invoice budget",
            "report budget ledger report",
            "report invoice",
        ]
        terms = clustering.class_tfidf_terms(texts, [0, 0, 0, 1, 1, 1], analyzer=str.split, top_n=2)
        assert [t for t, _ in terms[0]] == ["tomato", "garden"]
        assert [t for t, _ in terms[1]] == ["budget", "invoice"]

    def test_drops_numbers_and_short_terms(self) -> None:
        """Labels never show bare numbers or one-letter terms."""
        texts = ["2024 2024 x x 3.5 telescope", "2024 x nebula"]
        terms = clustering.class_tfidf_terms(texts, [0, 1], analyzer=str.split)
        assert terms == {
            0: [("telescope", pytest.approx(terms[0][0][1]))],
            1: [("nebula", pytest.approx(terms[1][0][1]))],
        }

    def test_noise_is_not_labelled(self) -> None:
        """Outliers take no part in the labels."""
        terms = clustering.class_tfidf_terms(
            ["alpha beta", "gamma delta"], [0, -1], analyzer=str.split
        )
        assert list(terms) == [0]
        assert {t for t, _ in terms[0]} == {"alpha", "beta"}

    def test_batch_analyzer(self) -> None:
        """A batch analyzer gives the same terms as the one-text analyzer."""
        texts, labels = ["apple pear", "plum fig"], [0, 1]
        one = clustering.class_tfidf_terms(texts, labels, analyzer=str.split)
        many = clustering.class_tfidf_terms(
            texts, labels, batch_analyzer=lambda ts: [t.split() for t in ts]
        )
        assert one == many

    def test_stems_read_as_words(self) -> None:
        """Labels show the commonest word behind a stem; Korean morphemes stay."""
        from documents.analysis import analyze

        texts = ["Payroll and payrolls; the galaxies, a galaxy, galaxies.", "임베딩은 좋다"]
        words = clustering.surface_forms(
            ["payrol", "galaxi", "임베딩", "absent"], texts, analyzer=analyze
        )
        assert words == {
            "payrol": "payroll",
            "galaxi": "galaxies",
            "임베딩": "임베딩",
            "absent": "absent",
        }

    def test_label_format(self) -> None:
        """A label joins the three best terms with a middle dot."""
        label = clustering.label_from_terms([("a1", 3.0), ("b2", 2.0), ("c3", 1.0), ("d4", 0.5)])
        assert label == "a1 · b2 · c3"


class TestDrift:
    def test_classifies_clusters(self) -> None:
        """Clusters are matched by member overlap and called new/grew/shrank/stable/vanished."""
        previous = {i: 0 for i in range(1, 11)}
        previous |= {i: 1 for i in range(11, 16)}
        previous |= {i: 2 for i in range(16, 21)}
        previous |= {i: 3 for i in range(40, 50)}
        current: dict[int, int | None] = {i: 5 for i in range(1, 11)}
        current |= {i: 5 for i in range(21, 27)}  # grew
        current |= {i: 6 for i in range(11, 16)}  # stable (renumbered)
        current |= {i: 7 for i in range(30, 36)}  # new
        current |= {i: 8 for i in range(40, 45)}  # shrank
        current |= {99: None}  # an outlier counts nowhere
        drift = {
            (d.kind, d.current, d.previous)
            for d in clustering.compare_memberships(previous, current)
        }
        assert drift == {
            (DriftKind.GREW, 5, 0),
            (DriftKind.STABLE, 6, 1),
            (DriftKind.NEW, 7, None),
            (DriftKind.SHRANK, 8, 3),
            (DriftKind.VANISHED, None, 2),
        }

    def test_identical_runs_are_stable(self) -> None:
        """The same memberships under other numbers are all stable, Jaccard 1."""
        previous = {i: i % 3 for i in range(30)}
        current = {i: (i + 1) % 3 for i in range(30)}
        drift = clustering.compare_memberships(previous, current)
        assert [d.kind for d in drift] == [DriftKind.STABLE] * 3
        assert all(d.jaccard == 1.0 for d in drift)


# --- The run, end to end ----------------------------------------------------------


class TestClusteringRun:
    def test_three_topics_end_to_end(
        self,
        admin_user: User,
        topic_documents: dict[str, list[Document]],
        django_capture_on_commit_callbacks: Callable[..., Any],
    ) -> None:
        """Queued after commit, the task finds the three topics and labels them."""
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            run = clustering_run_queue(
                run=ClusteringRun(
                    algorithm=ClusteringRun.Algorithm.AUTO, k_min=2, k_max=6, created_by=admin_user
                )
            )
        assert len(callbacks) == 1
        run.refresh_from_db()
        assert run.status == ClusteringRun.Status.DONE, run.error
        assert run.progress == 100
        assert run.document_count == 30
        assert run.skipped_count == 0
        assert run.silhouette is not None and run.silhouette > 0
        assert sorted(run.silhouette_by_k) == ["2", "3", "4", "5", "6"]
        assert run.projection_computed is True
        clusters = list(run.clusters.order_by("number"))
        assert [c.size for c in clusters] == [10, 10, 10]
        for cluster in clusters:
            members = set(cluster.memberships.values_list("document_id", flat=True))
            topic = next(
                t for t, docs in topic_documents.items() if members == {d.pk for d in docs}
            )
            assert set(cluster.terms[:3]) <= set(TOPICS[topic])
            assert cluster.label.count(" · ") == 2
            assert set(cluster.representatives) <= members
            assert 0 < cluster.cohesion <= 1
        assert ClusterMembership.objects.filter(run=run, x__isnull=True).count() == 0

    def test_fixed_k_and_hdbscan(self, topic_documents: dict[str, list[Document]]) -> None:
        """k-means with k=3 and HDBSCAN both finish on the three topics."""
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)
        assert run.status == ClusteringRun.Status.DONE, run.error
        assert sorted(run.clusters.values_list("size", flat=True)) == [10, 10, 10]
        run = run_now(algorithm=ClusteringRun.Algorithm.HDBSCAN, min_cluster_size=5)
        assert run.status == ClusteringRun.Status.DONE, run.error
        assert run.clusters.count() == 3

    def test_tag_scope(self, topic_documents: dict[str, list[Document]]) -> None:
        """A tag scope clusters only the tagged documents."""
        make_document("Untagged", "tomato garden compost", tags=["other"])
        run = run_now(
            scope=ClusteringRun.Scope.TAG,
            tag="corpus",
            algorithm=ClusteringRun.Algorithm.KMEANS,
            k=3,
        )
        assert run.document_count == 30

    def test_inputs_take_two_queries(
        self,
        topic_documents: dict[str, list[Document]],
        django_assert_num_queries: Callable[..., Any],
    ) -> None:
        """One aggregate checks the scope, one read loads ids, texts and vectors."""
        run = ClusteringRun.objects.create(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)
        with django_assert_num_queries(2):
            inputs = clustering_inputs(run=run)
        assert inputs.vectors.shape == (30, 384)
        assert len(inputs.texts) == len(inputs.document_ids) == 30
        assert inputs.texts[0].startswith(Document.objects.get(pk=inputs.document_ids[0]).title)

    def test_task_ignores_a_deleted_run(self) -> None:
        """A run deleted before the worker ran is skipped quietly."""
        clustering_run_task(123456789)

    def test_finished_run_is_not_run_again(
        self, topic_documents: dict[str, list[Document]]
    ) -> None:
        """Re-delivering the task of a finished run changes nothing."""
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)
        first = set(Cluster.objects.filter(run=run).values_list("pk", flat=True))
        clustering_run_execute(run_id=run.pk)
        assert set(Cluster.objects.filter(run=run).values_list("pk", flat=True)) == first


class TestClusteringEdgeCases:
    def test_fewer_documents_than_clusters(self) -> None:
        """Asking for more clusters than documents fails with the numbers."""
        for i in range(3):
            make_document(f"Doc {i}", f"tomato garden {i}")
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=5)
        assert run.status == ClusteringRun.Status.FAILED
        assert run.error == (
            "Only 3 documents with embeddings are in scope: too few for 5 clusters "
            "(at least 5 are needed)."
        )

    def test_empty_scope(self) -> None:
        """A scope without documents fails and says which scope."""
        run = run_now(
            scope=ClusteringRun.Scope.TAG,
            tag="nothing",
            algorithm=ClusteringRun.Algorithm.KMEANS,
            k=2,
        )
        assert run.status == ClusteringRun.Status.FAILED
        assert run.error == "No documents in scope (tag “nothing”)."

    def test_documents_without_embeddings_are_reported(
        self, topic_documents: dict[str, list[Document]]
    ) -> None:
        """Documents not yet embedded are left out, counted and mentioned."""
        for i in range(2):
            make_document(f"Pending {i}", "not indexed yet", index=False)
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)
        assert run.status == ClusteringRun.Status.DONE
        assert run.skipped_count == 2
        assert run.document_count == 30
        assert "2 documents without an embedding yet were left out." in run.message

    def test_nothing_embedded_yet(self) -> None:
        """A scope of unembedded documents fails: nothing to cluster yet."""
        for i in range(3):
            make_document(f"Pending {i}", "not indexed yet", index=False)
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=2)
        assert run.status == ClusteringRun.Status.FAILED
        assert run.error == (
            "None of the 3 documents in scope has an embedding yet; wait until they are indexed."
        )

    def test_mixed_models_are_refused(self, topic_documents: dict[str, list[Document]]) -> None:
        """Vectors of two models are not clustered together; the error names both."""
        ids = [d.pk for d in topic_documents["space"]]
        Document.objects.filter(pk__in=ids).update(embedding_model="other-model")
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=2)
        assert run.status == ClusteringRun.Status.FAILED
        assert run.error.startswith(
            "Documents in scope were embedded by 2 models: fake-hash-384 (20), other-model (10)."
        )

    def test_choosing_a_model_clusters_its_documents(
        self, topic_documents: dict[str, list[Document]]
    ) -> None:
        """With a model chosen, the others' documents are left out and mentioned."""
        ids = [d.pk for d in topic_documents["space"]]
        Document.objects.filter(pk__in=ids).update(embedding_model="other-model")
        run = run_now(
            algorithm=ClusteringRun.Algorithm.KMEANS, k=2, embedding_model="fake-hash-384"
        )
        assert run.status == ClusteringRun.Status.DONE, run.error
        assert run.document_count == 20
        assert "10 documents embedded by other models were left out." in run.message

    def test_unknown_model_is_refused(self, topic_documents: dict[str, list[Document]]) -> None:
        """Choosing a model nobody used says which models there are."""
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=2, embedding_model="nope")
        assert run.status == ClusteringRun.Status.FAILED
        assert run.error == (
            "No document in scope is embedded by nope; models in scope: fake-hash-384 (30)."
        )

    def test_unexpected_errors_fail_the_run(
        self, topic_documents: dict[str, list[Document]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A crash in the math is recorded on the run, not raised."""

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("out of memory")

        monkeypatch.setattr("search.clustering.services.cluster_vectors", boom)
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=2)
        assert run.status == ClusteringRun.Status.FAILED
        assert run.error == "Clustering failed unexpectedly: RuntimeError: out of memory"


class TestReport:
    def test_drift_against_the_previous_run(
        self, topic_documents: dict[str, list[Document]], admin_user: User
    ) -> None:
        """A second run of the same scope is compared with the first."""
        first = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)
        for i in range(8):
            make_document(f"Comet {i}", "comet nebula galaxy orbit telescope planet")
        second = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)
        report = clustering_report(run=second, user=admin_user)
        assert report.previous_run == first
        kinds = sorted(row.drift.kind for row in report.drift)
        assert kinds == [DriftKind.GREW, DriftKind.STABLE, DriftKind.STABLE]

    def test_restricted_members_are_hidden(
        self,
        topic_documents: dict[str, list[Document]],
        hr_group: Group,
        user: User,
        admin_user: User,
    ) -> None:
        """The report lists only documents the viewer may see."""
        secret = make_document(
            "Secret payroll", "payroll ledger audit budget invoice", groups=[hr_group]
        )
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)
        hidden = clustering_report(run=run, user=user)
        shown = clustering_report(run=run, user=admin_user)
        assert hidden.visible_count == 30
        assert shown.visible_count == 31
        assert secret.title not in [p.title for p in hidden.points]
        assert all(secret.pk not in v.visible_ids for v in hidden.clusters)

    def test_labels_of_clusters_with_hidden_members_are_withheld(
        self,
        topic_documents: dict[str, list[Document]],
        hr_group: Group,
        user: User,
        admin_user: User,
    ) -> None:
        """A label could quote a restricted member's text: outsiders get none."""
        secret = make_document(
            "Secret payroll", "payroll ledger audit budget invoice", groups=[hr_group]
        )
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)
        cluster = ClusterMembership.objects.get(run=run, document=secret).cluster
        assert cluster is not None
        number = cluster.number
        hidden = {v.cluster.number: v for v in clustering_report(run=run, user=user).clusters}
        shown = {v.cluster.number: v for v in clustering_report(run=run, user=admin_user).clusters}
        assert hidden[number].label == "" and hidden[number].terms == []
        assert shown[number].label == run.clusters.get(number=number).label != ""
        others = [n for n in hidden if n != number]
        assert all(hidden[n].label == shown[n].label != "" for n in others)


# --- Admin ------------------------------------------------------------------------


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("clerk", password="pw-clerk-123", is_staff=True)


@pytest.fixture
def analyst(staff: User) -> User:
    staff.user_permissions.add(Permission.objects.get(codename="run_clustering"))
    return User.objects.get(pk=staff.pk)


@pytest.fixture
def done_run(topic_documents: dict[str, list[Document]]) -> ClusteringRun:
    make_document("<script>alert(1)</script>", topic_text("garden", random.Random(1)))
    make_document('=HYPERLINK("http://x")', topic_text("finance", random.Random(2)))
    return run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)


def _urls(run: ClusteringRun) -> list[str]:
    return [
        reverse("admin:clustering_clusteringrun_changelist"),
        reverse("admin:clustering_clusteringrun_add"),
        reverse("admin:clustering_clusteringrun_change", args=[run.pk]),
        reverse("admin:clustering_clusteringrun_export", args=[run.pk]),
        reverse("admin:clustering_clusteringrun_duplicates"),
    ]


class TestClusteringAdmin:
    def test_pages_render_for_a_superuser(
        self, client: Client, admin_user: User, done_run: ClusteringRun
    ) -> None:
        """List, add form, report, CSV and duplicates all answer 200."""
        client.force_login(admin_user)
        for url in _urls(done_run):
            assert client.get(url).status_code == 200, url

    def test_staff_without_permission_is_refused(
        self, client: Client, staff: User, done_run: ClusteringRun
    ) -> None:
        """Staff without the clustering permissions get 403 everywhere."""
        client.force_login(staff)
        for url in _urls(done_run):
            assert client.get(url).status_code == 403, url

    def test_permitted_user_starts_a_run(
        self,
        client: Client,
        analyst: User,
        topic_documents: dict[str, list[Document]],
        django_capture_on_commit_callbacks: Callable[..., Any],
    ) -> None:
        """The add form queues a run after commit and shows its report."""
        client.force_login(analyst)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                reverse("admin:clustering_clusteringrun_add"),
                {
                    "scope": "all",
                    "algorithm": "kmeans",
                    "k": "3",
                    "k_min": "2",
                    "k_max": "12",
                    "embedding_model": "fake-hash-384",
                },
            )
        run = ClusteringRun.objects.get()
        assert response.status_code == 302
        assert response["Location"] == reverse(
            "admin:clustering_clusteringrun_change", args=[run.pk]
        )
        assert run.created_by == analyst
        assert run.status == ClusteringRun.Status.DONE, run.error
        page = client.get(response["Location"])
        assert page.status_code == 200
        assert "Cluster sizes" in page.content.decode()

    def test_add_form_validates(self, client: Client, admin_user: User) -> None:
        """A tag scope without a tag and k-means without k are rejected."""
        client.force_login(admin_user)
        response = client.post(
            reverse("admin:clustering_clusteringrun_add"),
            {
                "scope": "tag",
                "algorithm": "kmeans",
                "k_min": "2",
                "k_max": "12",
            },
        )
        assert response.status_code == 200
        assert not ClusteringRun.objects.exists()
        errors = response.context["adminform"].form.errors
        assert errors["tag"] == ["Give the tag whose documents to cluster."]
        assert errors["k"] == ["k-means needs k of at least 2."]

    def test_report_escapes_titles(
        self, client: Client, admin_user: User, done_run: ClusteringRun
    ) -> None:
        """A title with markup shows as text in the lists and map tooltips."""
        client.force_login(admin_user)
        html = client.get(
            reverse("admin:clustering_clusteringrun_change", args=[done_run.pk])
        ).content.decode()
        assert "<script>alert(1)" not in html
        assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; (" in html
        assert "<svg" in html and "<circle" in html and "<rect" in html

    def test_csv_export(self, client: Client, admin_user: User, done_run: ClusteringRun) -> None:
        """The CSV has one plain-text row per document; formulas are defused."""
        client.force_login(admin_user)
        response = client.get(reverse("admin:clustering_clusteringrun_export", args=[done_run.pk]))
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert rows[0] == ["document_id", "title", "cluster", "label", "distance_to_centroid"]
        assert len(rows) == 33
        by_title = {row[1]: row for row in rows[1:]}
        script = by_title["<script>alert(1)</script>"]
        assert script[2] in {"0", "1", "2"}
        assert script[3] == Cluster.objects.get(run=done_run, number=int(script[2])).label
        assert 0 <= float(script[4]) <= 2
        assert '\'=HYPERLINK("http://x")' in by_title

    def test_csv_leaves_out_restricted_documents(
        self,
        client: Client,
        analyst: User,
        hr_group: Group,
        topic_documents: dict[str, list[Document]],
    ) -> None:
        """A viewer outside the group does not get the restricted document."""
        make_document("Secret payroll", "payroll ledger audit", groups=[hr_group])
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)
        client.force_login(analyst)
        body = client.get(reverse("admin:clustering_clusteringrun_export", args=[run.pk]))
        assert "Secret payroll" not in body.content.decode()
        assert len(body.content.decode().strip().splitlines()) == 31

    def test_failed_run_report_shows_the_error(self, client: Client, admin_user: User) -> None:
        """A failed run's page explains why instead of erroring."""
        run = run_now(
            scope=ClusteringRun.Scope.TAG, tag="none", algorithm=ClusteringRun.Algorithm.KMEANS, k=2
        )
        client.force_login(admin_user)
        page = client.get(reverse("admin:clustering_clusteringrun_change", args=[run.pk]))
        assert page.status_code == 200
        assert "No documents in scope (tag “none”)." in page.content.decode()


class TestStalledRuns:
    def test_a_run_whose_worker_died_is_failed_with_a_reason(
        self, client: Client, admin_user: User, topic_documents: dict[str, list[Document]]
    ) -> None:
        """A run silent past the task's time limit is failed when the admin looks."""
        long_ago = timezone.now() - datetime.timedelta(seconds=CLUSTERING_TIME_LIMIT + 60)
        dead = ClusteringRun.objects.create(
            status=ClusteringRun.Status.RUNNING, progress=40, updated_at=long_ago
        )
        alive = ClusteringRun.objects.create(status=ClusteringRun.Status.RUNNING, progress=40)
        waiting = ClusteringRun.objects.create(updated_at=long_ago)  # Queued: may just wait.
        client.force_login(admin_user)
        page = client.get(reverse("admin:clustering_clusteringrun_change", args=[dead.pk]))
        assert "stopped without finishing" in page.content.decode()
        assert 'http-equiv="refresh"' not in page.content.decode()
        statuses = dict(ClusteringRun.objects.values_list("pk", "status"))
        assert statuses == {
            dead.pk: ClusteringRun.Status.FAILED,
            alive.pk: ClusteringRun.Status.RUNNING,
            waiting.pk: ClusteringRun.Status.QUEUED,
        }
        # If the broker delivers the task again after all, the run starts over.
        clustering_run_execute(run_id=dead.pk)
        dead.refresh_from_db()
        assert dead.status == ClusteringRun.Status.DONE
        assert dead.error == ""

    def test_progress_keeps_a_run_alive(self, topic_documents: dict[str, list[Document]]) -> None:
        run = run_now(algorithm=ClusteringRun.Algorithm.KMEANS, k=3)
        assert timezone.now() - run.updated_at < datetime.timedelta(minutes=1)
        assert clustering_runs_reap() == 0


class TestClusterLinks:
    def test_cluster_filter_on_the_document_admin(
        self, client: Client, admin_user: User, done_run: ClusteringRun
    ) -> None:
        """The clustering app adds ClusterListFilter to the document admin; links use it."""
        from django.contrib import admin

        from search.clustering.admin import ClusterListFilter

        assert ClusterListFilter in admin.site._registry[Document].list_filter
        client.force_login(admin_user)
        cluster = done_run.clusters.get(number=1)
        page = client.get(reverse("admin:clustering_clusteringrun_change", args=[done_run.pk]))
        link = f"{reverse('admin:documents_document_changelist')}?cluster={cluster.pk}"
        assert link in page.content.decode()
        listing = client.get(link)
        assert listing.status_code == 200
        assert listing.context["cl"].result_count == cluster.size
        assert {d.pk for d in listing.context["cl"].result_list} == set(
            cluster.memberships.values_list("document_id", flat=True)
        )


class TestNearDuplicates:
    def test_copies_are_paired_once(
        self, admin_user: User, user: User, hr_group: Group, client: Client
    ) -> None:
        """Copies above the threshold are listed once per pair, visible ones only."""
        text = "Tomato seedlings need warmth, light and careful watering."
        a = make_document("Seedlings", text)
        b = make_document("Seedlings (copy)", text)
        make_document("Budget", "Invoices and quarterly taxation ledger.")
        secret = make_document("Seedlings (HR copy)", text, groups=[hr_group])
        pairs = near_duplicate_pairs(user=user, threshold=0.9)
        assert [(p.first.document_id, p.second.document_id) for p in pairs] == [(a.pk, b.pk)]
        assert pairs[0].similarity > 0.9
        everyone = near_duplicate_pairs(user=admin_user, threshold=0.9)
        assert len(everyone) == 3
        assert any(secret.pk in (p.first.document_id, p.second.document_id) for p in everyone)
        client.force_login(admin_user)
        page = client.get(
            reverse("admin:clustering_clusteringrun_duplicates"), {"threshold": "0.9"}
        )
        assert "Seedlings (copy)" in page.content.decode()
