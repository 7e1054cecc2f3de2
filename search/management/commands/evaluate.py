"""Evaluate search quality on a BEIR-format dataset."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from search.ranking.backends import SearchMode
from search.ranking.evaluation import (
    index_dataset,
    load_beir,
    open_evaluation_database,
    run_queries,
    score_run,
)


class Command(BaseCommand):
    help = (
        "Load a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) into a "
        "separate database, index it with the normal pipeline and print nDCG@10, "
        "Recall@100 and MRR@10 per search mode."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, type=Path)
        parser.add_argument("--modes", default="keyword,semantic,hybrid")
        parser.add_argument(
            "--provider", default=None, help="Embedding provider (default: EMBEDDING_PROVIDER)."
        )
        parser.add_argument("--json", action="store_true", help="Print JSON only.")
        parser.add_argument(
            "--rebuild", action="store_true", help="Index the corpus again instead of reusing it."
        )
        parser.add_argument("--max-queries", type=int, default=None)
        parser.add_argument("--split", default="test")
        parser.add_argument(
            "--rerank",
            action="store_true",
            help="Also score each mode re-ranked by the cross-encoder of RERANK_MODEL.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            modes = [SearchMode(m.strip()) for m in options["modes"].split(",") if m.strip()]
        except ValueError as exc:
            raise CommandError(f"{exc}; modes are keyword, semantic, hybrid") from None
        if options["rerank"]:
            from search.ranking.rerank import RerankerUnavailable, get_reranker

            try:
                get_reranker()
            except RerankerUnavailable as exc:
                raise CommandError(str(exc)) from None
        try:
            dataset = load_beir(options["dataset"], split=options["split"])
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        try:
            embedder = open_evaluation_database(dataset, options["provider"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        quiet = options["json"]
        started = time.perf_counter()
        bar = tqdm(
            total=len(dataset.corpus),
            unit="doc",
            disable=quiet,
            desc=f"indexing {dataset.name}",
            file=self.stderr._out,
        )
        indexed = index_dataset(
            dataset,
            rebuild=options["rebuild"],
            progress=lambda done, total: bar.update(done - bar.n),
        )
        bar.close()
        index_seconds = time.perf_counter() - started
        user = _evaluation_user()
        results: dict[str, Any] = {
            "dataset": dataset.name,
            "provider": embedder.name,
            "documents": len(dataset.corpus),
            "indexed_now": indexed,
            "index_seconds": round(index_seconds, 1),
            "modes": {},
        }
        variants = [(False, "")] + ([(True, "+rerank")] if options["rerank"] else [])
        for mode in modes:
            for rerank, suffix in variants:
                started = time.perf_counter()
                run = run_queries(
                    dataset, mode=mode, user=user, limit=options["max_queries"], rerank=rerank
                )
                elapsed = time.perf_counter() - started
                metrics = score_run(run, dataset.qrels)
                metrics["ms_per_query"] = round(1000 * elapsed / max(len(run), 1), 1)
                results["modes"][mode.value + suffix] = metrics
        if quiet:
            self.stdout.write(json.dumps(results, indent=2))
            return
        self.stdout.write(
            f"\n{dataset.name}: {len(dataset.corpus)} documents, provider {embedder.name}"
        )
        self.stdout.write(
            f"{'mode':<10}{'nDCG@10':>10}{'R@100':>10}{'MRR@10':>10}{'queries':>9}{'ms/q':>8}"
        )
        for mode, m in results["modes"].items():
            self.stdout.write(
                f"{mode:<10}{m['ndcg@10']:>10.3f}{m['recall@100']:>10.3f}"
                f"{m['mrr@10']:>10.3f}{m['queries']:>9}{m['ms_per_query']:>8}"
            )


def _evaluation_user() -> Any:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="evaluation", defaults={"is_superuser": True, "is_staff": True}
    )
    return user
