"""The clustering admin: its pages, permissions, CSV export and links to documents."""

from __future__ import annotations

import csv
import io
import random
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from documents.models import Document
from search.clustering.models import Cluster, ClusteringRun
from tests.factories import make_document
from tests.search.clustering.helpers import run_now, topic_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.contrib.auth.models import Group
    from django.test import Client

pytestmark = pytest.mark.django_db


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
