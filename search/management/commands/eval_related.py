"""Evaluate related-document methods on a BEIR-format dataset."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from search.ranking.evaluation import index_dataset, load_beir, open_evaluation_database
from search.related import RelatedMethod, related_documents
from search.related.evaluation import (
    clustering_scores,
    document_vectors,
    false_duplicate_pairs,
    group_judgments,
    near_copy_cosines,
    title_groups,
)


def related_judgments(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Documents relevant to the same query count as related to each other.

    For every query with at least two relevant documents, each of them has
    the others as its related set (union over queries).
    """
    related: dict[str, dict[str, int]] = {}
    for judged in qrels.values():
        relevant = sorted(doc for doc, grade in judged.items() if grade > 0)
        if len(relevant) < 2:
            continue
        for doc in relevant:
            related.setdefault(doc, {}).update({other: 1 for other in relevant if other != doc})
    return related


def score_related(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], *, k: int
) -> dict[str, float]:
    """nDCG@k and Recall@k (pytrec_eval, the TREC reference implementation)."""
    import pytrec_eval

    measures = {f"ndcg_cut.{k}", f"recall.{k}"}
    # trec_eval drops sources without any result; count them as zeros.
    scored = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    n = len(qrels)
    return {
        f"ndcg@{k}": sum(m[f"ndcg_cut_{k}"] for m in scored.values()) / n,
        f"recall@{k}": sum(m[f"recall_{k}"] for m in scored.values()) / n,
        "sources": n,
    }


class Command(BaseCommand):
    help = (
        "Score the related-documents methods (document, chunk, combined) on a BEIR "
        "folder: documents relevant to the same query are each other's related set. "
        "Uses (and builds if needed) the database of `manage.py evaluate`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, type=Path)
        parser.add_argument(
            "--provider", default=None, help="Embedding provider (default: EMBEDDING_PROVIDER)."
        )
        parser.add_argument("--split", default="test")
        parser.add_argument("--k", type=int, default=10)
        parser.add_argument("--methods", default=",".join(m.value for m in RelatedMethod))
        parser.add_argument("--json", action="store_true", help="Print JSON only.")
        parser.add_argument(
            "--groups",
            action="store_true",
            help="Documents sharing a title form a group (titles hidden from the model): "
            "related nDCG/Recall, clustering NMI/ARI and false duplicate pairs.",
        )
        parser.add_argument(
            "--near-copies",
            type=int,
            default=0,
            metavar="N",
            help="With --groups: also embed near-copies of N documents and print how close "
            "they come to their originals, against the cosines of distinct documents.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["groups"]:
            self._groups(options)
            return

        try:
            methods = [RelatedMethod(m.strip()) for m in options["methods"].split(",") if m.strip()]
            dataset = load_beir(options["dataset"], split=options["split"])
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        qrels = related_judgments(dataset.qrels)
        if not qrels:
            raise CommandError(
                f"{dataset.name} has no query with two or more relevant "
                "documents: nothing to evaluate"
            )
        try:
            embedder = open_evaluation_database(dataset, options["provider"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        indexed = index_dataset(dataset, rebuild=False)
        results: dict[str, Any] = {
            "dataset": dataset.name,
            "provider": embedder.name,
            "documents": len(dataset.corpus),
            "indexed_now": indexed,
            "sources": len(qrels),
            "methods": {},
        }
        for method in methods:
            started = time.perf_counter()
            run = _run(qrels, method=method, k=options["k"])
            metrics = score_related(run, qrels, k=options["k"])
            metrics["ms_per_document"] = round(
                1000 * (time.perf_counter() - started) / len(qrels), 1
            )
            results["methods"][method.value] = metrics
        self._print(results, k=options["k"], quiet=options["json"])

    def _groups(self, options: dict[str, Any]) -> None:
        """Related documents, clusters and near-copies judged by shared titles."""
        try:
            dataset = load_beir(options["dataset"], split=options["split"])
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        groups = title_groups(dataset.corpus)
        if len(groups) < 2:
            raise CommandError(f"{dataset.name} has fewer than two titles shared by documents")
        embedder = open_evaluation_database(dataset, options["provider"], variant="groups")
        indexed = index_dataset(dataset, rebuild=False, hide_titles=True)
        qrels = group_judgments(groups)
        k = options["k"]
        started = time.perf_counter()
        run = _run(qrels, method=RelatedMethod.DOCUMENT, k=k)
        metrics = score_related(run, qrels, k=k)
        metrics["ms_per_document"] = round(1000 * (time.perf_counter() - started) / len(qrels), 1)
        vectors = document_vectors()
        titles = {doc: title for doc, (title, _text) in dataset.corpus.items()}
        threshold = embedder.duplicate_threshold
        clusters = clustering_scores(vectors, groups)
        results: dict[str, Any] = {
            "dataset": dataset.name,
            "provider": embedder.name,
            "documents": len(dataset.corpus),
            "indexed_now": indexed,
            "grouped_documents": len(qrels),
            "groups": len(groups),
            "related": metrics,
            "clustering": {"nmi": clusters.nmi, "ari": clusters.ari},
            "duplicate_threshold": threshold,
            "false_duplicate_pairs": false_duplicate_pairs(vectors, titles, threshold=threshold),
            "false_duplicate_pairs_at_0.95": false_duplicate_pairs(vectors, titles, threshold=0.95),
        }
        if options["near_copies"]:
            results["near_copies"] = _calibration(dataset, vectors, titles, options, embedder)
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2))
            return
        self.stdout.write(
            f"\n{dataset.name}: {len(qrels)} documents in {len(groups)} groups (titles hidden),"
            f" provider {embedder.name}\n"
            f"related   nDCG@{k} {metrics[f'ndcg@{k}']:.3f}   R@{k} {metrics[f'recall@{k}']:.3f}"
            f"   {metrics['ms_per_document']} ms/doc\n"
            f"clusters  NMI {clusters.nmi:.3f}   ARI {clusters.ari:.3f}   (k-means, k={len(groups)})\n"
            f"false duplicate pairs  {results['false_duplicate_pairs']} at the model's"
            f" {threshold:.3f}, {results['false_duplicate_pairs_at_0.95']} at 0.95"
        )
        if calibration := results.get("near_copies"):
            self.stdout.write(
                f"near-copies of {calibration['sample']} documents: cosine to the original"
                f" min {calibration['min']:.3f}, 1st percentile {calibration['p1']:.3f},"
                f" 5th {calibration['p5']:.3f}; distinct pairs at or above each threshold:"
            )
            self.stdout.write(
                "  " + "  ".join(f"{t}: {n}" for t, n in calibration["false_pairs"].items())
            )

    def _print(self, results: dict[str, Any], *, k: int, quiet: bool) -> None:
        if quiet:
            self.stdout.write(json.dumps(results, indent=2))
            return
        self.stdout.write(
            f"\n{results['dataset']}: {results['documents']} documents, "
            f"{results['sources']} with related sets, provider "
            f"{results['provider']}"
        )
        self.stdout.write(f"{'method':<10}{f'nDCG@{k}':>10}{f'R@{k}':>10}{'ms/doc':>9}")
        for method, m in results["methods"].items():
            self.stdout.write(
                f"{method:<10}{m[f'ndcg@{k}']:>10.3f}{m[f'recall@{k}']:>10.3f}"
                f"{m['ms_per_document']:>9}"
            )


def _calibration(
    dataset: Any, vectors: Any, titles: dict[str, str], options: dict[str, Any], embedder: Any
) -> dict[str, Any]:
    """Near-copies' cosines to their originals, and distinct pairs above thresholds."""
    cosines = near_copy_cosines(dataset.corpus, sample=options["near_copies"], embedder=embedder)
    return {
        "sample": len(cosines),
        "min": float(cosines.min()),
        "p1": float(np.percentile(cosines, 1)),
        "p5": float(np.percentile(cosines, 5)),
        "false_pairs": {
            f"{t:.3f}": false_duplicate_pairs(vectors, titles, threshold=t)
            for t in (0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.975, 0.98, 0.985, 0.99)
        },
    }


def _run(
    qrels: dict[str, dict[str, int]], *, method: RelatedMethod, k: int
) -> dict[str, dict[str, float]]:
    """Related documents of every judged source, as a TREC run."""
    from documents.models import Document

    by_source = {
        path.removeprefix("beir:"): document
        for document in Document.objects.filter(
            source_path__in=[f"beir:{doc}" for doc in qrels]
        ).only("pk", "source_path")
        for path in [document.source_path]
    }
    ids = dict(Document.objects.values_list("pk", "source_path"))
    user = _evaluation_user()
    run: dict[str, dict[str, float]] = {}
    for source in qrels:
        if (document := by_source.get(source)) is None:
            continue
        related = related_documents(user=user, document=document, k=k, method=method)
        # Scores must fall with rank for trec_eval; rank order is the truth.
        run[source] = {
            ids[r.document_id].removeprefix("beir:"): float(k - rank)
            for rank, r in enumerate(related)
        }
    return run


def _evaluation_user() -> Any:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="evaluation", defaults={"is_superuser": True, "is_staff": True}
    )
    return user
