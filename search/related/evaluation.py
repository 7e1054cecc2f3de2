"""Evaluating related documents, near-copies and clusters on grouped corpora.

In a grouped corpus the documents sharing a ``title`` belong together (the
paragraphs of one article, the pages of one PDF). Titles are hidden from the
model (the corpus is indexed without them), so only the text can tell:

* related documents: each grouped document ranks the others; the rest of its
  group is relevant (nDCG@k, Recall@k through pytrec_eval);
* clusters: k-means with k = the number of groups, as the clustering report
  runs it, against the groups (NMI, ARI);
* near-copies: pairs of documents from different groups whose embeddings are
  at or above the model's duplicate threshold: each one a false "possible
  duplicate" flag; and, against them, real near-copies (a document with a
  sentence dropped, numbers changed, a line added, spacing changed) and how
  close the model puts them to their originals.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, slots=True)
class GroupScores:
    nmi: float
    ari: float
    groups: int
    documents: int


def title_groups(corpus: Mapping[str, tuple[str, str]]) -> dict[str, list[str]]:
    """Documents per title, for titles shared by two or more documents."""
    groups: dict[str, list[str]] = defaultdict(list)
    for doc_id, (title, _text) in corpus.items():
        if title.strip():
            groups[title.strip()].append(doc_id)
    return {title: sorted(ids) for title, ids in groups.items() if len(ids) > 1}


def group_judgments(groups: Mapping[str, list[str]]) -> dict[str, dict[str, int]]:
    """Each grouped document has the rest of its group as its related set."""
    return {
        doc: {other: 1 for other in members if other != doc}
        for members in groups.values()
        for doc in members
    }


def clustering_scores(
    vectors: Mapping[str, np.ndarray], groups: Mapping[str, list[str]], *, seed: int = 0
) -> GroupScores:
    """k-means over the grouped documents' vectors (k = groups) against the groups."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from search.clustering.algorithms import kmeans

    ids = [doc for members in groups.values() for doc in members if doc in vectors]
    truth = [
        label for label, members in enumerate(groups.values()) for doc in members if doc in vectors
    ]
    result = kmeans(np.vstack([vectors[doc] for doc in ids]), len(groups), seed=seed)
    labels = [int(label) for label in result.labels]
    return GroupScores(
        nmi=float(normalized_mutual_info_score(truth, labels)),
        ari=float(adjusted_rand_score(truth, labels)),
        groups=len(groups),
        documents=len(ids),
    )


def false_duplicate_pairs(
    vectors: Mapping[str, np.ndarray], titles: Mapping[str, str], *, threshold: float
) -> int:
    """Pairs of documents with different titles at or above ``threshold`` (cosine)."""
    ids = sorted(vectors)
    matrix = np.vstack([vectors[doc] for doc in ids]).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    group = np.array([titles.get(doc, "").strip() or f"\0{doc}" for doc in ids])
    pairs = 0
    for start in range(0, len(ids), 512):  # Blocks of rows: bounded memory.
        similar = matrix[start : start + 512] @ matrix.T >= threshold
        rows, columns = np.nonzero(similar)
        rows += start
        upper = columns > rows
        pairs += int(np.count_nonzero(group[rows[upper]] != group[columns[upper]]))
    return pairs


def near_copy(text: str, *, seed: int) -> str:
    """``text`` as an editor would leave a second version of it: one sentence
    dropped, a number changed, a short line added, spacing changed."""
    rng = random.Random(seed)
    sentences = [s for s in re.split(r"(?<=[.!?다])\s+", text.strip()) if s]
    if len(sentences) > 2:
        sentences.pop(rng.randrange(len(sentences)))
    edited = " ".join(sentences)
    edited = re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 9)), edited, count=2)
    edited = edited.replace(". ", ".  ", 1)
    return f"{edited}\n\n(개정 {rng.randint(2020, 2026)} / revised)"


def near_copy_cosines(
    corpus: Mapping[str, tuple[str, str]], *, sample: int, embedder: Any, seed: int = 0
) -> np.ndarray:
    """Cosine of each of ``sample`` documents (text only) with a near-copy of it."""
    from documents.services.indexing import document_vectors_of

    rng = random.Random(seed)
    ids = rng.sample(sorted(doc for doc, (_, text) in corpus.items() if text.strip()), sample)
    originals = document_vectors_of([("", corpus[doc][1]) for doc in ids], embedder)
    copies = document_vectors_of(
        [("", near_copy(corpus[doc][1], seed=n)) for n, doc in enumerate(ids)], embedder
    )
    return np.sum(originals * copies, axis=1)


def document_vectors() -> dict[str, np.ndarray]:
    """Every indexed document's vector, by its BEIR id."""
    from documents.models import Document

    rows: Any = Document.objects.exclude(embedding=None).values_list("source_path", "embedding")
    return {
        path.removeprefix("beir:"): np.asarray(vector, dtype=np.float32) for path, vector in rows
    }
