"""The measuring commands: ``evaluate`` (metrics, reuse, isolation) and ``bench_search``.

Both switch the process to a database of their own, so they run as real
management commands in a subprocess, on the test server, with the fake
embedder; the databases they create are dropped afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.db import connection

from documents.embeddings.local import MINILM_NAME
from documents.models import Document
from search.ranking.evaluation import load_beir, score_run
from tests.worker import run_command

if TYPE_CHECKING:
    pass

CORPUS = [
    {"_id": "d1", "title": "Vacation policy", "text": "Employees receive annual leave days."},
    {"_id": "d2", "title": "Expense reports", "text": "Receipts are required for travel claims."},
    {"_id": "d3", "title": "연차 휴가", "text": "직원은 매년 연차 휴가를 받습니다."},
    {"_id": "d4", "title": "Security", "text": "Laptops must use full disk encryption."},
]
QUERIES = [
    {"_id": "q1", "text": "annual leave"},
    {"_id": "q2", "text": "travel receipts"},
    # Relevant document shares no word with the query: keyword finds nothing.
    {"_id": "q3", "text": "disk encryption"},
    {"_id": "q4", "text": "no judgements for this query"},
]
QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 1)]


def write_beir(path: Path, *, name: str = "tiny") -> Path:
    folder = path / name
    (folder / "qrels").mkdir(parents=True)
    for filename, rows in (("corpus.jsonl", CORPUS), ("queries.jsonl", QUERIES)):
        (folder / filename).write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
        )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS),
        encoding="utf-8",
    )
    return folder


class TestScoreRun:
    def test_metrics_follow_the_rank_of_the_relevant_document(self) -> None:
        qrels = {"a": {"x": 1}, "b": {"y": 1}}
        run = {
            "a": {"x": 3.0, "z": 2.0},  # relevant first
            "b": {"z": 3.0, "y": 2.0},  # relevant second
        }
        metrics = score_run(run, qrels)
        assert metrics["queries"] == 2
        assert metrics["mrr@10"] == pytest.approx((1 + 1 / 2) / 2)
        assert metrics["recall@100"] == pytest.approx(1.0)
        # nDCG@10 of a single relevant document at rank 2 is 1 / log2(3).
        assert metrics["ndcg@10"] == pytest.approx((1 + 1 / 1.5849625) / 2, rel=1e-6)

    def test_a_query_with_nothing_found_counts_as_zero(self) -> None:
        metrics = score_run({"a": {"x": 1.0}, "b": {}}, {"a": {"x": 1}, "b": {"y": 1}})
        assert metrics["ndcg@10"] == pytest.approx(0.5)
        assert metrics["recall@100"] == pytest.approx(0.5)

    def test_mrr_only_looks_at_the_first_ten(self) -> None:
        ranked = {f"n{i}": float(100 - i) for i in range(10)} | {"x": 1.0}
        metrics = score_run({"a": ranked}, {"a": {"x": 1}})
        assert metrics["mrr@10"] == 0.0
        assert metrics["recall@100"] == 1.0


class TestLoadBeir:
    def test_reads_the_three_files(self, tmp_path: Path) -> None:
        dataset = load_beir(write_beir(tmp_path))
        assert dataset.name == "tiny"
        assert dataset.corpus["d3"] == ("연차 휴가", "직원은 매년 연차 휴가를 받습니다.")
        assert dataset.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
        assert set(dataset.queries) == {"q1", "q2", "q3"}  # q4 has no judgements.

    def test_a_folder_that_is_not_beir_is_named_with_what_is_missing(self, tmp_path: Path) -> None:
        (tmp_path / "corpus.jsonl").write_text("", encoding="utf-8")
        with pytest.raises(FileNotFoundError, match=r"missing queries.jsonl, qrels/test.tsv"):
            load_beir(tmp_path)


@pytest.mark.django_db(transaction=True)
class TestEvaluateCommand:
    def test_scores_every_mode_in_its_own_database_and_reuses_the_index(
        self, tmp_path: Path, created_databases: list[str]
    ) -> None:
        dataset = write_beir(tmp_path)
        created_databases.append(f"{connection.settings_dict['NAME']}_eval_tiny_fake")
        first = run_command("evaluate", "--dataset", str(dataset), "--provider", "fake", "--json")
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        assert report["documents"] == 4
        assert report["indexed_now"] == 4
        assert set(report["modes"]) == {"keyword", "semantic", "hybrid"}
        keyword = report["modes"]["keyword"]
        # q1 and q2 find their document first; q3 shares no word with it.
        assert keyword["queries"] == 3
        assert keyword["ndcg@10"] == pytest.approx(2 / 3)
        assert keyword["mrr@10"] == pytest.approx(2 / 3)
        for metrics in report["modes"].values():
            assert 0.0 <= metrics["ndcg@10"] <= 1.0
        # The users' database never sees the corpus.
        assert not Document.objects.exists()

        second = run_command(
            "evaluate", "--dataset", str(dataset), "--provider", "fake", "--modes", "keyword"
        )
        assert second.returncode == 0, second.stderr
        assert "tiny: 4 documents, provider fake" in second.stdout
        assert "keyword" in second.stdout
        assert "semantic" not in second.stdout.split("provider")[1]

        again = run_command(
            "evaluate",
            "--dataset",
            str(dataset),
            "--provider",
            "fake",
            "--json",
            "--modes",
            "keyword",
        )
        assert json.loads(again.stdout)["indexed_now"] == 0

    def test_bad_arguments_are_refused_with_a_message(self, tmp_path: Path) -> None:
        not_beir = run_command("evaluate", "--dataset", str(tmp_path))
        assert not_beir.returncode != 0
        assert "is not a BEIR folder" in not_beir.stderr
        bad_mode = run_command(
            "evaluate", "--dataset", str(write_beir(tmp_path)), "--modes", "fuzzy"
        )
        assert bad_mode.returncode != 0
        assert "modes are keyword, semantic, hybrid" in bad_mode.stderr


@pytest.mark.django_db(transaction=True)
def test_bench_search_reports_latency_recall_and_speedup(
    tmp_path: Path, created_databases: list[str]
) -> None:
    created_databases.append(f"{connection.settings_dict['NAME']}_bench_search")
    dataset = write_beir(tmp_path)
    result = run_command(
        "bench_search", "--dataset", str(dataset), "--chunks", "200", "--queries", "4", "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["chunks"] == 200
    assert report["queries"] == 4
    assert report["model"] == "fake-hash-384"
    for mode in ("keyword", "semantic", "hybrid"):
        assert 0 < report["modes"][mode]["p50"] <= report["modes"][mode]["p95"]
    assert 0.0 <= report["recall_at_10"] <= 1.0
    assert report["speedup"] > 0
    assert report["cpus"] >= 1


@pytest.mark.django_db(transaction=True)
def test_bench_search_writes_and_times_the_companion_vectors(
    tmp_path: Path, created_databases: list[str]
) -> None:
    """With the real all-MiniLM-L6-v2 as companion, the corpus's chunks carry
    its vectors and every mode is timed with English queries embedded twice."""
    created_databases.append(f"{connection.settings_dict['NAME']}_bench_search")
    result = run_command(
        "bench_search",
        "--dataset",
        str(write_beir(tmp_path)),
        "--chunks",
        "200",
        "--queries",
        "4",
        "--json",
        env={"EMBEDDING_COMPANION": MINILM_NAME},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["companion"] == MINILM_NAME
    for mode in ("semantic", "hybrid"):
        assert 0 < report["modes"][mode]["p50"] <= report["modes"][mode]["p95"]
