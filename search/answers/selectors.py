"""Answering a question from the documents a user may see (reads only).

Hybrid search ranks the user's visible documents; the best passages of the
top ones are where the answer is looked for, and what it cites. Nothing a
user may not see can reach an answer, a citation or a prompt: every passage
comes from ``search_hits`` over ``Document.objects.visible_to(user)``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from config.routers import read_connection
from documents.analysis import detect_language
from search.answers.extractive import (
    Extract,
    Passage,
    best_sentence,
    idf_weights,
    scored_sentences,
)
from search.ranking.backends import SearchFilters, SearchHit, SearchMode
from search.ranking.backends.sql import base_query
from search.ranking.query import parse_query
from search.ranking.selectors import search_hits, visible_documents

if TYPE_CHECKING:
    from collections.abc import Sequence

    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as AuthUser

    from search.ranking.query import ParsedQuery

    User = AuthUser | AnonymousUser

#: Documents whose passages are read for the answer (and may be cited).
ANSWER_DOCUMENTS: Final = 3
#: Keyword-matching chunks read per document, besides its best semantic one.
KEYWORD_CHUNKS: Final = 3
#: Citations shown with an answer.
MAX_CITATIONS: Final = 3

_QUESTION_START: Final = re.compile(
    r"^(what|how|who|whom|whose|when|where|why|which|is|are|was|were|do|does|did|can|could|"
    r"should|will|would|may|has|have)\b",
    re.IGNORECASE,
)
#: Korean question words and endings ("며칠인가요", "어떻게 하나요", "있습니까").
_KOREAN_QUESTION: Final = re.compile(
    r"(무엇|뭐|어떻게|어떤|언제|어디|누가|누구|왜|몇|며칠|얼마|어느)"
    r"|(나요|가요|까요|습니까|입니까|인가|을까|ㄹ까|니까|는지|은지|나\?|니\?)\s*\??$"
)


@dataclass(frozen=True, slots=True)
class Citation:
    number: int
    passage: Passage
    #: The answer's span inside this passage, if the answer comes from it.
    highlight: tuple[int, int] | None = None


@dataclass(slots=True)
class Answer:
    question: str
    language: str
    #: "extractive" (a sentence of the documents), "generated" (a language
    #: model's, from the passages), or "none" (nothing answers it).
    kind: str
    text: str = ""
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    score: float | None = None
    notes: list[str] = field(default_factory=list)
    latency_ms: float = 0.0


def is_question(text: str) -> bool:
    """Whether a search reads as a question (the page then shows an answer card)."""
    text = text.strip()
    return text.endswith(("?", "\uff1f")) or bool(
        _QUESTION_START.match(text) or _KOREAN_QUESTION.search(text)
    )


def answer_passages(
    parsed: ParsedQuery,
    *,
    user: User | None,
    filters: SearchFilters | None = None,
    hits: Sequence[SearchHit] | None = None,
) -> list[Passage]:
    """The passages of the top documents where an answer is looked for, best first.

    ``hits`` are a ranking already made for ``user`` (the search page's own
    hybrid results); without them the documents are ranked here.
    """
    if hits is None:
        hits = search_hits(
            query=parsed, mode=SearchMode.HYBRID, user=user, filters=filters, limit=ANSWER_DOCUMENTS
        )
    hits = hits[:ANSWER_DOCUMENTS]
    if not hits:
        return []
    ranks = {hit.document_id: rank for rank, hit in enumerate(hits)}
    tsquery = " | ".join(f"'{term}'" for term in parsed.terms) or "''"
    with read_connection().cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, c.document_id, d.title, c.text, c.start_offset
            FROM documents_chunk c JOIN documents_document d ON d.id = c.document_id
            WHERE c.document_id = ANY(%s) AND c.embedding_model = d.embedding_model
              AND (c.id = ANY(%s) OR c.id IN (
                    SELECT k.id FROM (
                        SELECT c2.id, row_number() OVER (
                            PARTITION BY c2.document_id
                            ORDER BY ts_rank(c2.search_vector, %s::tsquery) DESC, c2.position
                        ) AS n
                        FROM documents_chunk c2
                        WHERE c2.document_id = ANY(%s) AND c2.search_vector @@ %s::tsquery
                    ) k WHERE k.n <= %s))
            ORDER BY c.document_id, c.position
            """,
            [
                list(ranks),
                [hit.chunk_id for hit in hits if hit.chunk_id],
                tsquery,
                list(ranks),
                tsquery,
                KEYWORD_CHUNKS,
            ],
        )
        rows = cursor.fetchall()
    passages = [
        Passage(
            chunk_id=chunk_id,
            document_id=document_id,
            title=title,
            text=text,
            start_offset=start,
            rank=ranks[document_id],
        )
        for chunk_id, document_id, title, text, start in rows
    ]
    return sorted(passages, key=lambda p: (p.rank, p.start_offset))


def question_weights(parsed: ParsedQuery, *, user: User | None) -> dict[str, float]:
    """The idf of the question's terms over the documents the user may see."""
    terms = list(dict.fromkeys(parsed.terms))
    if not terms:
        return {}
    base_sql, params = base_query(visible_documents(user, SearchFilters()))
    with read_connection().cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT count(*) FROM ({base_sql}) v),"
            " coalesce(json_object_agg(t.term, t.n), '{}'::json) FROM ("
            "  SELECT p.term, count(*) AS n FROM documents_documentterm p"
            f"  WHERE p.term = ANY(%s) AND p.document_id IN ({base_sql}) GROUP BY p.term) t",
            [*params, terms, *params],
        )
        n, df = cursor.fetchone()
    if isinstance(df, str):  # Django's connections load json as text.
        df = json.loads(df)
    return idf_weights(terms, df=df, n=int(n))


def extractive_answer(
    question: str,
    *,
    user: User | None,
    filters: SearchFilters | None = None,
    hits: Sequence[SearchHit] | None = None,
) -> Answer:
    """The sentence of the user's documents that answers ``question``, with citations.

    ``hits``: the user's hybrid ranking of ``question`` when the caller has it.
    """
    started = time.perf_counter()
    parsed = parse_query(question)
    answer = Answer(question=parsed.text, language=detect_language(parsed.text), kind="none")
    if not parsed.is_empty:
        answer.passages = answer_passages(parsed, user=user, filters=filters, hits=hits)
        sentences = scored_sentences(
            parsed.terms, question_weights(parsed, user=user), answer.passages
        )
        answer.passages = passages_by_relevance(sentences)
        extract = best_sentence(sentences)
        if extract is not None:
            answer.kind, answer.text, answer.score = "extractive", extract.text, extract.score
        answer.citations = citations_for(sentences, extract)
    answer.latency_ms = (time.perf_counter() - started) * 1000
    return answer


def passages_by_relevance(sentences: list[Extract]) -> list[Passage]:
    """The passages in the order of their best sentence (the most telling first)."""
    return list({s.passage.chunk_id: s.passage for s in sentences}.values())


def citations_for(sentences: list[Extract], extract: Extract | None) -> list[Citation]:
    """The answer's own passage first, then the passages of the next best sentences."""
    chosen: list[Citation] = []
    if extract is not None:
        chosen.append(Citation(1, extract.passage, (extract.start, extract.end)))
    seen = {c.passage.chunk_id for c in chosen}
    for sentence in sentences:
        if len(chosen) >= MAX_CITATIONS:
            break
        if sentence.passage.chunk_id not in seen:
            seen.add(sentence.passage.chunk_id)
            chosen.append(Citation(len(chosen) + 1, sentence.passage))
    return chosen
