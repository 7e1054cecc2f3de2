"""Extractive answers: the sentence of the retrieved passages that answers a question.

Pure functions (no database): the selector hands over the question's terms,
their idf over the visible collection, and the top passages of hybrid search.
Each sentence of those passages (``documents.ingestion.split_sentences``, which
knows Korean sentence endings) is scored by how much of the question it
contains, weighted by term rarity (so "연차" counts more than "최대"), with a
small prior for passages that search ranked higher. A question whose best
sentence contains too little of it gets no answer rather than a guess.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from documents.analysis import analyze_many
from documents.ingestion import split_sentences

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Below this share of the question's (idf-weighted) terms, no sentence answers
#: it. Chosen with ``eval_answers`` on korquad-v1-dev (README, "Answers").
MIN_SCORE: Final = 0.45
#: The score of the passage search ranked n-th is multiplied by
#: 1 / (1 + RANK_DECAY * n): a tie goes to the better-ranked passage.
RANK_DECAY: Final = 0.05
#: Sentences longer than this are cut around the best-matching terms.
MAX_SENTENCE_CHARS: Final = 400


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk the user may see."""

    chunk_id: int
    document_id: int
    title: str
    text: str
    #: Where the chunk starts in its document's text.
    start_offset: int
    #: Its document's rank in the search (0: first).
    rank: int


@dataclass(frozen=True, slots=True)
class Extract:
    """The answering sentence and where it is."""

    passage: Passage
    #: The sentence's span within ``passage.text``.
    start: int
    end: int
    score: float

    @property
    def text(self) -> str:
        return self.passage.text[self.start : self.end]


def idf_weights(terms: Sequence[str], *, df: Mapping[str, int], n: int) -> dict[str, float]:
    """BM25's idf of each distinct term (a term in no visible document weighs most)."""
    return {
        term: math.log(1 + (n - df.get(term, 0) + 0.5) / (df.get(term, 0) + 0.5))
        for term in dict.fromkeys(terms)
    }


#: Question words: what is asked for, never in the answering sentence.
QUESTION_WORDS: Final = frozenset(
    [
        "무엇",
        "뭐",
        "어떻게",
        "어떤",
        "언제",
        "어디",
        "누가",
        "누구",
        "왜",
        "몇",
        "며칠",
        "얼마",
        "어느",
        "얼마나",
    ]
)


def scored_sentences(
    question_terms: Sequence[str], weights: Mapping[str, float], passages: Sequence[Passage]
) -> list[Extract]:
    """Every sentence of the passages with its score, best first."""
    weights = {t: w for t, w in weights.items() if t not in QUESTION_WORDS}
    total = sum(weights.get(t, 0.0) for t in dict.fromkeys(question_terms))
    spans = [
        (p, start, end)
        for p in passages
        for start, end in split_sentences(p.text)
        if not is_heading(p.text[start:end])
    ]
    if total <= 0 or not spans:
        return []
    sentence_terms = analyze_many([p.text[start:end] for p, start, end in spans])
    scored = []
    for (passage, start, end), terms in zip(spans, sentence_terms, strict=True):
        present = set(terms)
        covered = sum(w for t, w in weights.items() if t in present)
        score = covered / total / (1 + RANK_DECAY * passage.rank)
        scored.append(Extract(passage=passage, start=start, end=end, score=score))
    # A tie goes to the better-ranked document, then to the earlier sentence
    # in it (chunks overlap, so a sentence's place in its chunk says little).
    return sorted(
        scored, key=lambda e: (-e.score, e.passage.rank, e.passage.start_offset + e.start)
    )


#: Where a sentence ends (Korean statements end in 다/요 without a full stop too).
_SENTENCE_END: Final = re.compile(
    "[.!?\u3002\uff1f\uff01\u2026\ub2e4\uc694)\\]\"'\u201d\u2019]\\s*$"
)
#: A line this short without an ending is a heading, not an answer.
HEADING_MAX_WORDS: Final = 6


def is_heading(text: str) -> bool:
    """A title line ("## Working From Abroad", "휴가 규정"): it names a topic and
    holds the question's words, but never answers it."""
    text = text.strip()
    if text.startswith("#"):
        return True
    return len(text.split()) <= HEADING_MAX_WORDS and not _SENTENCE_END.search(text)


def best_sentence(sentences: Sequence[Extract]) -> Extract | None:
    """The sentence that answers the question best, or None when none does enough."""
    if not sentences or sentences[0].score < MIN_SCORE:
        return None
    return _trimmed(sentences[0])


def _trimmed(extract: Extract) -> Extract:
    """A very long "sentence" (a table row, a list) cut to MAX_SENTENCE_CHARS."""
    if extract.end - extract.start <= MAX_SENTENCE_CHARS:
        return extract
    end = extract.start + MAX_SENTENCE_CHARS
    cut = extract.passage.text.rfind(" ", extract.start, end)
    return Extract(
        passage=extract.passage,
        start=extract.start,
        end=cut if cut > extract.start else end,
        score=extract.score,
    )
