"""``bench_ingest``: the in-process pipeline and real Celery workers on Redis."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from tests.worker import redis_client, run_command

if TYPE_CHECKING:
    from pathlib import Path

DOCUMENTS = (
    ("Leave policy", "Annual leave requests go through the HR portal."),
    ("Travel expenses", "Receipts for business travel are filed within a month."),
    ("Password policy", "Passwords are rotated every ninety days by the IT desk."),
)


def write_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"_id": str(n), "title": title, "text": text}) + "\n"
            for n, (title, text) in enumerate(DOCUMENTS)
        ),
        encoding="utf-8",
    )
    return corpus


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_one_worker_indexes_the_corpus_and_reports_chunks_per_second(
    tmp_path: Path, created_databases: list[str]
) -> None:
    """A real worker (fake embedder) stores every chunk the in-process run stored."""
    redis_client().close()  # Fails the test at once when Redis is down.
    created_databases.append(f"{connection.settings_dict['NAME']}_bench_ingest")
    result = run_command(
        "bench_ingest",
        "--corpus",
        str(write_corpus(tmp_path)),
        "--documents",
        "3",
        "--workers",
        "1",
        "--broker",
        "redis://127.0.0.1:6379/15",
        "--timeout",
        "120",
        "--json",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["model"] == "fake-hash-384"
    assert report["documents"] == 3
    assert report["chunks"] >= 3
    assert report["worker_pool"] == "prefork"
    assert report["worker_task_batch"] == 1
    [run] = report["workers"]
    assert run["workers"] == 1
    assert run["tasks"] == 3
    assert run["chunks"] == report["chunks"]
    assert run["chunks_per_s"] > 0
    assert run["model_loads"] == 1  # The warm-up's, in the pool's one child.
    assert report["workers_ratio"] == {}


class TestRefusals:
    def test_worker_counts_must_be_a_comma_list_of_positive_numbers(self, tmp_path: Path) -> None:
        """--workers takes counts such as 1,2; zero or words are refused."""
        for value in ("0", "1,x", ","):
            with pytest.raises(CommandError, match="is not a comma list of worker counts"):
                call_command(
                    "bench_ingest", "--corpus", str(write_corpus(tmp_path)), "--workers", value
                )

    def test_an_unreachable_redis_is_named(self, tmp_path: Path) -> None:
        """Without a Redis server the worker runs stop before anything is indexed."""
        with pytest.raises(
            CommandError, match=r"Redis is not reachable at redis://127\.0\.0\.1:1/0"
        ):
            call_command(
                "bench_ingest",
                "--corpus",
                str(write_corpus(tmp_path)),
                "--workers",
                "1",
                "--broker",
                "redis://127.0.0.1:1/0",
            )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_companion_model_counts_in_the_bare_encode(
    tmp_path: Path, created_databases: list[str]
) -> None:
    """With the English companion (the real all-MiniLM-L6-v2), the pipeline
    embeds English chunks twice, and so does the bare encode it is compared to."""
    from documents.embeddings.local import MINILM_NAME

    created_databases.append(f"{connection.settings_dict['NAME']}_bench_ingest")
    result = run_command(
        "bench_ingest",
        "--corpus",
        str(write_corpus(tmp_path)),
        "--documents",
        "3",
        "--json",
        env={"EMBEDDING_COMPANION": MINILM_NAME},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["companion"] == MINILM_NAME
    assert report["companion_chunks"] == report["chunks"] >= 3  # All three are English.
    assert report["ratio"] > 0
