"""End-to-end journeys in a real browser against the live server.

The live server runs the whole stack in a thread: the fake embedder (autouse
in ``tests/conftest.py``) and eager Celery, so a saved document is indexed
when its transaction commits, before the response comes back.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from documents.management.commands.setup_demo import DEMO_PASSWORD, DEMO_USERNAME
from documents.models import Document

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Page
    from pytest_django.live_server_helper import LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

RESULT_TOTAL: Final = re.compile(r"(\d+) results?")


@pytest.fixture
def demo_corpus() -> int:
    """The demo login and the demo corpus, indexed with the fake embedder."""
    call_command("setup_demo", no_progress=True, stdout=io.StringIO(), stderr=io.StringIO())
    ready = Document.objects.filter(status=Document.Status.READY).count()
    assert ready == Document.objects.count() > 20
    return ready


def log_in(page: Page, live_server: LiveServer, *, username: str, password: str) -> None:
    """Sign in through the login form and land on the search page."""
    page.goto(f"{live_server.url}/")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/search/"))


def result_total(page: Page) -> int:
    summary = page.locator("#results .summary").inner_text()
    match = RESULT_TOTAL.search(summary)
    assert match is not None, summary
    return int(match.group(1))


def htmx_search(page: Page, action: Callable[[], None], *, url_part: str) -> None:
    """Run ``action``; wait for its htmx request, the swapped results and the pushed URL."""
    page.evaluate("document.querySelectorAll('#results > *').forEach(e => e.dataset.stale = 1)")
    with page.expect_response(
        lambda r: "/search/" in r.url and r.request.headers.get("hx-request") == "true"
    ) as response:
        action()
    assert response.value.ok is True
    # The swap replaces the region's children: none of the marked ones is left.
    page.wait_for_function("!document.querySelector('#results > [data-stale]')")
    page.wait_for_url(re.compile(re.escape(url_part)))


def open_first_result(page: Page) -> str:
    """Click the first result's title; return it once the document page shows."""
    link = page.locator("#results li.result h2 a").first
    title = link.inner_text().strip()
    link.click()
    page.wait_for_url(re.compile(r"/documents/\d+/"))
    return title


class TestSearchJourney:
    def test_login_modes_filter_document_and_related(
        self, page: Page, live_server: LiveServer, demo_corpus: int
    ) -> None:
        """Modes switch in place, a tag narrows the results, documents link to related ones."""
        log_in(page, live_server, username=DEMO_USERNAME, password=DEMO_PASSWORD)
        assert page.locator(".topbar .user").inner_text() == DEMO_USERNAME
        # A full navigation would drop this marker; htmx swaps keep it.
        page.evaluate("window.__marker = 1")

        page.locator("#id_q").fill("policy")
        htmx_search(page, lambda: page.locator("#id_q").press("Enter"), url_part="q=policy")
        assert result_total(page) > 0
        assert page.locator("#results dt", has_text="Fused score").count() > 0

        mode_switch = page.locator(".mode-switch label")
        htmx_search(
            page, lambda: mode_switch.filter(has_text="Keyword").click(), url_part="mode=keyword"
        )
        assert page.locator("#results .summary").inner_text().startswith("About")
        assert page.locator("#results dt", has_text="Fused score").count() == 0
        keyword_total = result_total(page)

        htmx_search(
            page, lambda: mode_switch.filter(has_text="Semantic").click(), url_part="mode=semantic"
        )
        assert page.locator("#results .summary").inner_text().startswith("Top")

        htmx_search(
            page, lambda: mode_switch.filter(has_text="Hybrid").click(), url_part="mode=hybrid"
        )
        assert page.locator("#results dt", has_text="Fused score").count() > 0
        assert page.evaluate("window.__marker") == 1

        htmx_search(
            page, lambda: mode_switch.filter(has_text="Keyword").click(), url_part="mode=keyword"
        )
        page.locator("details.filters summary").click()
        page.locator("#id_tag").fill("hr")
        htmx_search(
            page,
            lambda: page.get_by_role("button", name="Apply filters").click(),
            url_part="tag=hr",
        )
        narrowed = result_total(page)
        assert 0 < narrowed < keyword_total
        tags = page.locator("#results li.result .tags").all_inner_texts()
        assert len(tags) == min(narrowed, page.locator("#results li.result").count())
        assert all("hr" in text.split() for text in tags), tags
        assert page.evaluate("window.__marker") == 1

        title = open_first_result(page)
        assert page.locator("h1").inner_text() == title
        meta = page.locator("dl.doc-meta").inner_text()
        assert "hr" in page.locator("dl.doc-meta .tags").inner_text().split()
        assert "Ready" in meta
        assert "polic" in page.locator("pre.doc-text").inner_text().lower()
        assert page.evaluate("window.__marker") is None  # A real navigation.

        related = page.get_by_role("region", name="Related documents")
        link = related.locator("a[href*='/documents/']").first
        related_title = link.inner_text().strip()
        assert related_title != title
        source_url = page.url
        link.click()
        page.wait_for_url(lambda url: url != source_url and "/documents/" in url)
        assert page.locator("h1").inner_text().strip() == related_title


class TestAdmin:
    def test_upload_becomes_ready(
        self, page: Page, live_server: LiveServer, tmp_path: Path
    ) -> None:
        """A file uploaded in the admin is indexed and listed as Ready."""
        User.objects.create_superuser("editor", "editor@example.com", "pw-editor-123")
        upload = tmp_path / "quarterly-offsite.md"
        upload.write_text(
            "# Quarterly offsite plan\n\nThe engineering offsite takes place in Busan. "
            "Book travel through the usual portal.\n\n부산에서 열리는 분기 워크숍 안내입니다.\n",
            encoding="utf-8",
        )
        log_in(page, live_server, username="editor", password="pw-editor-123")

        page.goto(f"{live_server.url}/admin/documents/document/add/")
        page.locator("input[name=upload]").set_input_files(str(upload))
        page.locator("input[name=tags]").fill("events")
        page.locator("input[name=_save]").click()
        page.wait_for_url(re.compile(r"/admin/documents/document/$"))

        row = page.locator("#result_list tbody tr", has_text="Quarterly offsite plan")
        assert row.count() == 1
        assert row.locator("td.field-status_badge").inner_text() == "Ready"
        document = Document.objects.get(title="Quarterly offsite plan")
        assert document.status == Document.Status.READY
        assert document.original_filename == "quarterly-offsite.md"
        assert document.tags == ["events"]

    def test_clustering_report(self, page: Page, live_server: LiveServer, demo_corpus: int) -> None:
        """A clustering run started in the admin ends with a report of its clusters."""
        from django.contrib import admin

        from search.clustering.models import ClusteringRun

        if ClusteringRun not in admin.site._registry:
            pytest.skip("No ClusteringRun admin is registered")
        log_in(page, live_server, username=DEMO_USERNAME, password=DEMO_PASSWORD)

        page.goto(f"{live_server.url}/admin/clustering/clusteringrun/add/")
        page.locator("select[name=scope]").select_option("all")
        page.locator("select[name=algorithm]").select_option("kmeans")
        page.locator("input[name=k]").fill("4")
        page.locator("input[name=_save]").click()
        page.wait_for_url(re.compile(r"/admin/clustering/clusteringrun/\d+/change/"))

        run = ClusteringRun.objects.get()
        assert run.status == ClusteringRun.Status.DONE, run.error
        assert run.document_count == demo_corpus
        report = page.locator("#content-main")
        assert "Done" in report.locator("table").first.inner_text()
        assert report.get_by_role("heading", name="Clusters").count() == 1
        assert report.locator("svg[aria-label='Cluster map'] circle").count() == demo_corpus
        assert run.clusters.count() == 4


class TestKoreanText:
    def test_hangul_renders_as_glyphs_not_boxes(
        self, page: Page, live_server: LiveServer, demo_corpus: int
    ) -> None:
        """Korean text is drawn with a real font: two different syllables look different
        (a missing font draws both as the same empty box), and a Korean result shows."""
        log_in(page, live_server, username=DEMO_USERNAME, password=DEMO_PASSWORD)
        page.locator("#id_q").fill("비밀번호")
        htmx_search(page, lambda: page.locator("#id_q").press("Enter"), url_part="q=")
        assert "비밀번호" in page.locator("#results").inner_text()
        page.evaluate(
            """() => {
                for (const [id, text] of [["ko-a", "가"], ["ko-b", "힣"], ["ko-c", "가"]]) {
                    const span = document.createElement("span");
                    span.id = id;
                    span.textContent = text;
                    span.style.fontSize = "64px";
                    span.style.display = "inline-block";
                    span.style.width = "80px";
                    document.body.prepend(span);
                }
            }"""
        )
        first, second, again = (
            page.locator(f"#{id_}").screenshot() for id_ in ("ko-a", "ko-b", "ko-c")
        )
        assert first == again  # The comparison is stable ...
        assert first != second  # ... and the two syllables are distinct glyphs.
