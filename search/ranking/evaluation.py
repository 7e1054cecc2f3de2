"""Retrieval evaluation on BEIR-format datasets, in a database of their own.

A dataset is loaded into a separate PostgreSQL database (never the users'
documents), indexed by the normal pipeline, and every test query runs through
the same selector the views use. Metrics come from pytrec_eval (the TREC
reference implementation).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BeirDataset:
    name: str
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(path: Path, *, split: str = "test") -> BeirDataset:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""
    path = path.resolve()
    missing = [
        name
        for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv")
        if not (path / name).is_file()
    ]
    if missing:
        raise FileNotFoundError(f"{path} is not a BEIR folder: missing {', '.join(missing)}")
    corpus = {}
    for row in _jsonl(path / "corpus.jsonl"):
        corpus[str(row["_id"])] = (str(row.get("title") or ""), str(row.get("text") or ""))
    qrels: dict[str, dict[str, int]] = {}
    with (path / "qrels" / f"{split}.tsv").open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0] in ("query-id", "query_id"):
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries = {
        str(row["_id"]): str(row["text"])
        for row in _jsonl(path / "queries.jsonl")
        if str(row["_id"]) in qrels
    }
    return BeirDataset(name=path.name, corpus=corpus, queries=queries, qrels=qrels)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def evaluation_database_name(dataset: str, provider: str) -> str:
    base = settings.DATABASES["default"]["NAME"]
    slug = re.sub(r"[^a-z0-9]+", "_", f"{dataset}_{provider}".lower()).strip("_")
    return f"{base}_eval_{slug}"[:63]


def open_evaluation_database(
    dataset: BeirDataset, provider: str | None, *, variant: str = ""
) -> Any:
    """Use ``provider`` and the dataset's own database (migrated); return the embedder.

    ``variant`` names another index of the same dataset (its own database),
    such as one built without titles. Raises ValueError for an unknown provider.
    """
    from django.core.management import call_command

    from config.database import switch_database
    from documents.embeddings import create_embedder, set_embedder

    name = provider or settings.EMBEDDING_PROVIDER
    embedder = create_embedder(name)
    set_embedder(embedder)
    switch_database(evaluation_database_name(f"{dataset.name}_{variant}".strip("_"), name))
    call_command("migrate", verbosity=0)
    return embedder


def index_dataset(
    dataset: BeirDataset,
    *,
    rebuild: bool,
    progress: Callable[[int, int], None] | None = None,
    hide_titles: bool = False,
) -> int:
    """Load the corpus as documents and index it; reuse a complete index.

    ``hide_titles`` indexes the text alone (grouped evaluations, where the
    title names the group).
    """
    from documents.embeddings import get_embedder
    from documents.models import Document
    from documents.services import chunks_embed_companion, documents_bulk_create, documents_embed

    model = get_embedder().name
    if rebuild:
        Document.objects.all().delete()
    existing = set(Document.objects.values_list("source_path", flat=True))
    new = [
        Document(
            title="" if hide_titles else title[:500],
            text=text,
            source_path=f"beir:{doc_id}",
            source_type=Document.SourceType.TEXT,
        )
        for doc_id, (title, text) in dataset.corpus.items()
        if f"beir:{doc_id}" not in existing
    ]
    documents_bulk_create(documents=new)
    todo = list(
        Document.objects.exclude(status=Document.Status.READY, embedding_model=model)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    batch = 64
    for start in range(0, len(todo), batch):
        documents_embed(document_ids=todo[start : start + batch])
        if progress:
            progress(min(start + batch, len(todo)), len(todo))
    # An index reused from before the companion model (or another one) was
    # configured: its English chunks get the companion's vectors now.
    chunks_embed_companion()
    return len(todo)


def run_queries(
    dataset: BeirDataset,
    *,
    mode: str,
    user: Any,
    k: int = 100,
    limit: int | None = None,
    rerank: bool = False,
) -> dict[str, dict[str, float]]:
    """Rank the corpus for every test query; return a TREC run."""
    from documents.models import Document
    from search.ranking.selectors import search_hits

    ids = dict(Document.objects.values_list("pk", "source_path"))
    run: dict[str, dict[str, float]] = {}
    for number, (query_id, text) in enumerate(dataset.queries.items()):
        if limit is not None and number >= limit:
            break
        hits = search_hits(query=text, mode=mode, user=user, limit=k, rerank=rerank)
        # Scores must fall with rank for trec_eval; rank order is the truth.
        run[query_id] = {
            ids[hit.document_id].removeprefix("beir:"): float(k - index)
            for index, hit in enumerate(hits)
        }
    return run


def score_run(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]
) -> dict[str, float]:
    """nDCG@10, Recall@100 and MRR@10 averaged over the queries run."""
    import pytrec_eval

    qrels = {q: rel for q, rel in qrels.items() if q in run}
    if not qrels:
        return {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "queries": 0}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    top10 = {q: dict(sorted(d.items(), key=lambda i: -i[1])[:10]) for q, d in run.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = len(qrels)
    return {
        "ndcg@10": sum(m["ndcg_cut_10"] for m in full.values()) / n,
        "recall@100": sum(m["recall_100"] for m in full.values()) / n,
        "mrr@10": sum(m["recip_rank"] for m in mrr.values()) / n,
        "queries": n,
    }
