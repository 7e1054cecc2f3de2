"""Grouped evaluation of related documents, clusters and near-copies (search.related.evaluation)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
from django.db import connection

from documents.embeddings import FakeProvider
from search.related.evaluation import (
    clustering_scores,
    false_duplicate_pairs,
    group_judgments,
    near_copy,
    near_copy_cosines,
    title_groups,
)
from tests.worker import run_command

if TYPE_CHECKING:
    from pathlib import Path

CORPUS = {
    "a1": ("Seoul", "서울은 한국의 수도입니다. 인구는 약 천만 명입니다. 한강이 흐릅니다."),
    "a2": ("Seoul", "서울에는 경복궁과 남산타워가 있습니다. 지하철이 아홉 개 노선입니다."),
    "b1": ("Busan", "부산은 항구 도시입니다. 해운대 해수욕장이 유명합니다. 영화제가 열립니다."),
    "b2": ("Busan", "부산의 자갈치 시장은 수산물로 유명합니다. 광안대교가 있습니다."),
    "c1": ("Lonely", "A document with a title nobody shares."),
}


class TestJudgments:
    def test_groups_are_titles_shared_by_two_or_more(self) -> None:
        """A title on one document only is no group."""
        assert title_groups(CORPUS) == {"Seoul": ["a1", "a2"], "Busan": ["b1", "b2"]}

    def test_each_member_has_the_rest_of_its_group(self) -> None:
        judged = group_judgments({"g": ["x", "y", "z"]})
        assert judged == {"x": {"y": 1, "z": 1}, "y": {"x": 1, "z": 1}, "z": {"x": 1, "y": 1}}


class TestClustersAndCopies:
    def test_separate_groups_cluster_perfectly(self) -> None:
        """Two tight, distant groups: k-means finds them (NMI and ARI 1)."""
        rng = np.random.default_rng(3)
        centres = rng.normal(size=(2, 16))
        vectors = {
            f"{g}{n}": centres[i] + rng.normal(scale=0.01, size=16)
            for i, g in enumerate("ab")
            for n in range(5)
        }
        groups = {g: [f"{g}{n}" for n in range(5)] for g in "ab"}
        scores = clustering_scores(vectors, groups)
        assert (scores.nmi, scores.ari, scores.groups, scores.documents) == (1.0, 1.0, 2, 10)

    def test_only_pairs_across_groups_count_as_false_copies(self) -> None:
        """Equal vectors with the same title are a true copy; with another, a false one."""
        same = np.array([1.0, 0.0])
        vectors = {"x1": same, "x2": same, "y1": same, "z1": np.array([0.0, 1.0])}
        titles = {"x1": "X", "x2": "X", "y1": "Y", "z1": "Z"}
        assert false_duplicate_pairs(vectors, titles, threshold=0.99) == 2  # x1-y1, x2-y1
        assert false_duplicate_pairs(vectors, titles, threshold=1.01) == 0

    def test_a_near_copy_is_an_edited_second_version(self) -> None:
        """One sentence dropped, a number changed, a line added; deterministic per seed."""
        text = "연차는 15일입니다. 3년 이상 근속하면 25일입니다. 팀장이 승인합니다. 문의는 인사팀."
        copy = near_copy(text, seed=1)
        assert copy != text
        assert copy == near_copy(text, seed=1)
        assert "(개정" in copy
        assert len(copy.split(".")) <= len(text.split(".")) + 1

    def test_near_copies_are_close_to_their_originals(self) -> None:
        """With the fake embedder (bag of words), a copy shares most words: cosine high."""
        cosines = near_copy_cosines(
            {doc: ("", text) for doc, (_, text) in CORPUS.items()},
            sample=4,
            embedder=FakeProvider(),
        )
        assert cosines.shape == (4,)
        assert (cosines > 0.3).all()
        assert (cosines < 1.0).all()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_eval_related_groups_prints_every_figure(
    tmp_path: Path, created_databases: list[str]
) -> None:
    """The command indexes the corpus without titles, in a database of its own."""
    folder = tmp_path / "grouped"
    (folder / "qrels").mkdir(parents=True)
    rows = [{"_id": doc, "title": title, "text": text} for doc, (title, text) in CORPUS.items()]
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )
    (folder / "queries.jsonl").write_text('{"_id": "q", "text": "서울"}\n', encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("q\ta1\t1\n", encoding="utf-8")
    created_databases.append(f"{connection.settings_dict['NAME']}_eval_grouped_groups_fake")
    result = run_command(
        "eval_related", "--dataset", str(folder), "--provider", "fake", "--groups",
        "--near-copies", "3", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["groups"], report["grouped_documents"], report["documents"]) == (2, 4, 5)
    assert 0.0 <= report["related"]["ndcg@10"] <= 1.0
    assert set(report["clustering"]) == {"nmi", "ari"}
    assert report["duplicate_threshold"] == FakeProvider.duplicate_threshold
    assert report["near_copies"]["sample"] == 3
    assert set(report["near_copies"]["false_pairs"]) >= {"0.950", "0.970"}
