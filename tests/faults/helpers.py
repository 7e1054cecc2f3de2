"""Helpers of the fault tests: texts to index, a document's chunks and status, the checks."""

from __future__ import annotations

from documents.embeddings import FakeProvider
from documents.models import Chunk, Document

TASK_TIMEOUT = 60.0


def policy_text(topic: str, sections: int = 6) -> str:
    """A few paragraphs about ``topic``: several chunks with the fake embedder."""
    return "\n\n".join(
        f"Section {n} of the {topic} policy. Requests about {topic} go through the portal. "
        f"Managers review every {topic} request within three working days. "
        f"Questions about {topic} go to the people team."
        for n in range(sections)
    )


_WORDS = [
    "annual", "leave", "policy", "manager", "approve", "request", "portal", "travel",
    "expense", "report", "quarterly", "budget", "review", "security", "incident",
    "response", "training", "equipment", "office", "remote",
]  # fmt: skip


def handbook_text(marker: str, sentences: int = 4000) -> str:
    """A long handbook (thousands of chunks): indexing it takes the worker seconds."""
    lines = [
        " ".join(_WORDS[(i * 7 + k) % len(_WORDS)] for k in range(9)) + f" {marker}{i}."
        for i in range(sentences)
    ]
    return "\n\n".join(" ".join(lines[i : i + 6]) for i in range(0, len(lines), 6))


ChunkRow = tuple[int, int, int, int, str]  # pk, position, start, end, text


def chunk_rows(document_id: int, model: str | None = None) -> list[ChunkRow]:
    """The document's chunks (of one model's set, with ``model``), in order."""
    chunks = Chunk.objects.filter(document_id=document_id)
    if model is not None:
        chunks = chunks.filter(embedding_model=model)
    return list(
        chunks.order_by("position").values_list(
            "pk", "position", "start_offset", "end_offset", "text"
        )
    )


def status_of(document_id: int) -> str | None:
    return Document.objects.filter(pk=document_id).values_list("status", flat=True).first()


def assert_one_complete_chunk_set(
    document_id: int, model: str = FakeProvider.name, *, live: bool = True
) -> None:
    """The document is indexed from its current text by exactly one chunking of it.

    Positions run 0..n-1, every chunk is the slice of the text at its offsets,
    chunks advance strictly (a second set would start over), they cover every
    non-blank character of the text, and each has its vector. ``live``: the
    set is the document's live index and the only one; otherwise a staged set
    (a model switch) beside the live one.
    """
    document = Document.objects.get(pk=document_id)
    assert document.status == Document.Status.READY, (document.status, document.last_error)
    assert document.embedded_hash == document.content_hash
    if live:
        assert document.embedding_model == model
    else:
        assert document.staged_model == model
    rows = chunk_rows(document_id, model)
    assert rows, "no chunks"
    text = document.text
    assert [row[1] for row in rows] == list(range(len(rows)))
    previous_start, previous_end = -1, 0
    for _pk, _position, start, end, chunk in rows:
        assert chunk == text[start:end]
        assert start > previous_start
        assert end > previous_end
        assert not text[previous_end:start].strip(), "a gap in the chunks"
        previous_start, previous_end = start, end
    assert not text[previous_end:].strip(), "the end of the text is not chunked"
    chunks = Chunk.objects.filter(document_id=document_id, embedding_model=model)
    assert not chunks.filter(embedding__isnull=True).exists(), "chunks without vectors"
    if live:
        models = set(
            Chunk.objects.filter(document_id=document_id).values_list("embedding_model", flat=True)
        )
        assert models == {model}
