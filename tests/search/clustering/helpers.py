"""Helpers of the clustering tests: topic vocabularies and a run executed at once."""

from __future__ import annotations

import random
from typing import Any

from django.contrib.auth.models import User

from search.clustering.models import ClusteringRun
from search.clustering.services import clustering_run_execute, clustering_run_queue

TOPICS: dict[str, list[str]] = {
    "garden": [
        "tomato",
        "garden",
        "compost",
        "seedling",
        "soil",
        "prune",
        "harvest",
        "greenhouse",
        "mulch",
        "watering",
        "orchard",
        "fertiliser",
    ],
    "finance": [
        "invoice",
        "budget",
        "ledger",
        "audit",
        "payroll",
        "accountant",
        "expense",
        "revenue",
        "quarterly",
        "taxation",
        "dividend",
        "balance",
    ],
    "space": [
        "telescope",
        "galaxy",
        "planet",
        "orbit",
        "nebula",
        "comet",
        "asteroid",
        "starlight",
        "eclipse",
        "observatory",
        "satellite",
        "cosmos",
    ],
}


def topic_text(topic: str, rng: random.Random) -> str:
    return " ".join(rng.choices(TOPICS[topic], k=14)) + "."


def run_now(created_by: User | None = None, **options: Any) -> ClusteringRun:
    """Queue a run and execute it eagerly after the commit."""
    run = clustering_run_queue(run=ClusteringRun(created_by=created_by, **options))
    clustering_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run
