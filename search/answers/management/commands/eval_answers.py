"""Score the extractive answerer on a BEIR folder with gold answers (answers.jsonl)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from search.answers.evaluation import judge, load_answers
from search.answers.selectors import extractive_answer
from search.ranking.evaluation import index_dataset, load_beir, open_evaluation_database


class Command(BaseCommand):
    help = (
        "Answer every question of a BEIR folder that has answers.jsonl (gold answer "
        "strings, as korquad-v1-dev does) with the extractive answerer, in the database "
        "of `manage.py evaluate`, and print the share of answers containing a gold "
        "answer, of cited passages containing one, the no-answer rate and ms/question."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, type=Path)
        parser.add_argument("--provider", default=None)
        parser.add_argument("--max-queries", type=int, default=None)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["dataset"]
        if not (path / "answers.jsonl").is_file():
            raise CommandError(f"{path} has no answers.jsonl (gold answer strings)")
        try:
            dataset = load_beir(path)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        gold = load_answers(path / "answers.jsonl")
        embedder = open_evaluation_database(dataset, options["provider"])
        index_dataset(dataset, rebuild=False)
        user = _evaluation_user()
        questions = [(q, t) for q, t in dataset.queries.items() if q in gold]
        questions = questions[: options["max_queries"] or None]
        right = cited = unanswered = 0
        latencies: list[float] = []
        for query_id, text in tqdm(questions, disable=options["json"], file=self.stderr._out):
            answer = extractive_answer(text, user=user)
            latencies.append(answer.latency_ms)
            contains, in_citations = judge(answer, gold[query_id])
            right += contains
            cited += in_citations
            unanswered += answer.kind == "none"
        n = max(len(questions), 1)
        ordered = sorted(latencies) or [0.0]
        results = {
            "dataset": dataset.name,
            "provider": embedder.name,
            "questions": len(questions),
            "answer_contains_gold": right / n,
            "cited_passages_contain_gold": cited / n,
            "no_answer_rate": unanswered / n,
            "ms_p50": round(statistics.median(ordered), 1),
            "ms_p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        }
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2))
            return
        self.stdout.write(
            f"\n{dataset.name}: {len(questions)} questions, provider {embedder.name}\n"
            f"answer contains a gold answer   {results['answer_contains_gold']:.3f}"
            "  (target >= 0.60)\n"
            f"cited passages contain one       {results['cited_passages_contain_gold']:.3f}"
            "  (target >= 0.95)\n"
            f"no answer found                  {results['no_answer_rate']:.3f}\n"
            f"ms per question p50 / p95        {results['ms_p50']} / {results['ms_p95']}"
            "  (target p95 <= 300)"
        )


def _evaluation_user() -> Any:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="evaluation", defaults={"is_superuser": True, "is_staff": True}
    )
    return user
