"""A clustering run end to end: the task, its edge cases and runs whose worker died."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from documents.models import Document
from search.clustering.models import Cluster, ClusteringRun, ClusterMembership
from search.clustering.selectors import clustering_inputs
from search.clustering.services import (
    CLUSTERING_TIME_LIMIT,
    clustering_run_execute,
    clustering_run_queue,
    clustering_runs_reap,
)
from search.clustering.tasks import clustering_run as clustering_run_task
from tests.factories import make_document
from tests.search.clustering.helpers import TOPICS, run_now

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.test import Client

pytestmark = pytest.mark.django_db


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
