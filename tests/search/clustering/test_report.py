"""The clustering report: drift against the previous run, restricted members hidden."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from documents.models import Document
from search.clustering.algorithms import DriftKind
from search.clustering.models import ClusteringRun, ClusterMembership
from search.clustering.selectors import clustering_report
from tests.factories import make_document
from tests.search.clustering.helpers import run_now

if TYPE_CHECKING:
    from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


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
