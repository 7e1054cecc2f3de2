"""Fixtures of the clustering tests: thirty indexed documents on three topics."""

from __future__ import annotations

import random

import pytest

from documents.models import Document
from tests.factories import make_document
from tests.search.clustering.helpers import TOPICS, topic_text


@pytest.fixture
def topic_documents() -> dict[str, list[Document]]:
    """Thirty small indexed documents, ten per topic."""
    rng = random.Random(7)
    return {
        topic: [
            make_document(
                f"{words[i % len(words)].title()} {words[(i + 3) % 12]}",
                topic_text(topic, rng),
                tags=["corpus"],
            )
            for i in range(10)
        ]
        for topic, words in TOPICS.items()
    }
