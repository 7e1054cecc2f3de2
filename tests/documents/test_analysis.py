"""Tests for documents.analysis: the shared index/query keyword analyser."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import pytest

from documents import analysis
from documents.analysis import (
    ENGLISH_STOPWORDS,
    MAX_PIECE_CHARS,
    MAX_TERM_LENGTH,
    SAFE_TERM_PATTERN,
    analyze,
    analyze_many,
    detect_language,
    hangul_ratio,
    is_safe_term,
)

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in requirements.txt
    given = None  # type: ignore[assignment]

PROJECT_ROOT: Final[Path] = Path(__file__).resolve().parents[2]

# Independent restatement of the safe alphabet, so a loosened
# SAFE_TERM_PATTERN cannot make these tests pass vacuously.
FORBIDDEN_CHARS: Final[frozenset[str]] = frozenset("&|!():*<>'\"\\_ \t\n\r;,.-=%$@#?/`~^[]{}+")


def assert_safe(terms: list[str]) -> None:
    """Assert every term is from the documented safe alphabet."""
    pattern = re.compile(SAFE_TERM_PATTERN)
    for term in terms:
        assert pattern.fullmatch(term), term
        assert is_safe_term(term), term
        assert not (set(term) & FORBIDDEN_CHARS), term
        assert term == term.lower(), term
        assert 1 <= len(term) <= MAX_TERM_LENGTH, term


class TestKorean:
    """Korean text keeps content morphemes and drops particles and endings."""

    @pytest.mark.parametrize("text", ["임베딩", "임베딩은", "임베딩을", "임베딩이", "임베딩의"])
    def test_particle_forms_share_a_term(self, text: str) -> None:
        """A noun with any particle analyses to the bare noun."""
        assert analyze(text) == ["임베딩"]

    @pytest.mark.parametrize("text", ["검색", "검색했다", "검색하는", "검색한다", "검색하여"])
    def test_verb_conjugations_share_the_noun(self, text: str) -> None:
        """Noun + 하다 conjugations keep the noun and drop the 하 suffix."""
        assert analyze(text) == ["검색"]

    @pytest.mark.parametrize("text", ["찾다", "찾았다", "찾는"])
    def test_plain_verbs_emit_the_stem(self, text: str) -> None:
        """A plain verb is indexed by its stem."""
        assert analyze(text) == ["찾"]

    def test_sentence_keeps_nouns_and_drops_function_words(self) -> None:
        """Particles, endings, pronouns and bound nouns do not become terms."""
        terms = analyze("나는 그것을 형태소 분석기로 분석했다")
        assert "형태소" in terms
        assert "분석" in terms
        for dropped in ("나", "그것", "는", "을", "로", "했", "다"):
            assert dropped not in terms

    def test_light_verbs_are_dropped(self) -> None:
        """하다, 있다, 없다 on their own carry no search value."""
        assert analyze("일을 하다") == ["일"]
        assert analyze("문서가 있다") == ["문서"]

    def test_numbers_and_hanja_are_kept(self) -> None:
        """Numbers attached to counters and Hanja survive as terms."""
        assert analyze("2024년 人工知能") == ["2024", "人工知能"]

    def test_compound_nouns_are_consistent(self) -> None:
        """However Kiwi splits a compound, query and document agree."""
        assert analyze("벡터검색") == analyze("벡터검색을")
        assert analyze("임베딩모델") == analyze("임베딩모델을")

    def test_hangul_jamo_noise_is_dropped(self) -> None:
        """Runs of bare jamo (ㅋㅋ, ㅠㅠ) are not terms."""
        assert analyze("ㅋㅋㅋ ㅠㅠ") == []


class TestEnglish:
    """English words are lowercased, stopword-filtered and Snowball-stemmed."""

    @pytest.mark.parametrize(
        ("left", "right"),
        [
            ("running", "run"),
            ("runs", "run"),
            ("policies", "policy"),
            ("Searching", "search"),
            ("INDEXES", "index"),
        ],
    )
    def test_inflections_share_a_stem(self, left: str, right: str) -> None:
        """Inflected forms analyse to the same single term."""
        assert analyze(left) == analyze(right)
        assert len(analyze(left)) == 1

    def test_known_stems(self) -> None:
        """The Snowball English stemmer is the one in use."""
        assert analyze("running runs policies policy") == ["run", "run", "polici", "polici"]

    def test_stopwords_are_dropped(self) -> None:
        """Snowball English stopwords, contractions included, never become terms."""
        assert analyze("The cat is on the mat and it is not there") == ["cat", "mat"]
        assert analyze("don't won't it's") == []
        assert {"the", "and", "don't", "yourselves"} <= ENGLISH_STOPWORDS

    def test_case_insensitive(self) -> None:
        """Case does not matter."""
        assert analyze("Vector SEARCH") == analyze("vector search") == ["vector", "search"]

    def test_possessive_is_stripped(self) -> None:
        """'s and typographic apostrophes reduce to the base word."""
        assert analyze("user's") == ["user"]
        assert analyze("user\u2019s") == ["user"]

    def test_hyphens_split_words(self) -> None:
        """Hyphenated tokens split into their parts; numbers are kept."""
        assert analyze("covid-19") == ["covid", "19"]
        assert analyze("e-mail") == ["e", "mail"]

    def test_numbers_are_kept(self) -> None:
        """Numbers are terms; decimals split at the point."""
        assert analyze("In 2024 we saw 19 cases") == ["2024", "saw", "19", "case"]
        assert analyze("3.14") == ["3", "14"]

    def test_underscore_splits(self) -> None:
        """Underscore separates words, as PostgreSQL's parser does."""
        assert analyze("snake_case") == ["snake", "case"]

    def test_nfkc_normalisation(self) -> None:
        """Full-width letters and ligatures normalise to plain ASCII."""
        assert analyze("\uff36\uff25\uff23\uff34\uff2f\uff32 \ufb01le") == ["vector", "file"]

    def test_other_latin_scripts_are_lowercased(self) -> None:
        """Accented Latin, Greek and Cyrillic letters are kept, lowercased."""
        assert analyze("Café ΑΒΓ Привет") == ["café", "αβγ", "привет"]


class TestMixed:
    """Korean and English in one text are both analysed."""

    def test_mixed_sentence(self) -> None:
        """Korean morphemes and English stems come out in text order."""
        assert analyze("임베딩 모델을 HNSW index로 검색한다") == [
            "임베딩",
            "모델",
            "hnsw",
            "index",
            "검색",
        ]

    def test_english_rules_apply_inside_korean_text(self) -> None:
        """Latin words in Korean text get the same treatment as in English text."""
        assert analyze("the user's indexes를 검색") == ["user", "index", "검색"]
        english = analyze("Running policies covid-19 don't")
        assert analyze("한국어 Running policies covid-19 don't") == ["한국어", *english]

    def test_duplicates_are_kept_in_order(self) -> None:
        """Term frequency and positions survive: duplicates are not removed."""
        assert analyze("검색 search 검색 search") == ["검색", "search", "검색", "search"]


class TestSafety:
    """Whatever the input, terms are plain tokens safe for tsvector/tsquery."""

    @pytest.mark.parametrize(
        "text",
        [
            "'; DROP TABLE documents; --",
            "' OR 1=1 --",
            "a & b | !c",
            "foo:* <-> bar:A",
            "(x) & !(y) | z:*",
            '"quoted" \\ backslash $$ $1 %s {0}',
            "검색' OR '1'='1",
            "<script>alert('x')</script>",
            "\x00\x07\x1b[31mred\x1b[0m",
        ],
    )
    def test_metacharacters_yield_only_safe_terms(self, text: str) -> None:
        """Injection strings and tsquery syntax produce only safe terms."""
        assert_safe(analyze(text))

    def test_injection_words_are_plain_terms(self) -> None:
        """The words of an injection attempt remain searchable text."""
        assert analyze("'; DROP TABLE documents; --") == ["drop", "tabl", "document"]

    @pytest.mark.parametrize(
        "text", ["", " ", "\n\t  \r\n", "!!!", "?!.,;:-", "😀👍🏽🎉", "\u200b\ufeff", "...---..."]
    )
    def test_nothing_to_index_gives_empty_list(self, text: str) -> None:
        """Empty, whitespace-only, punctuation-only and emoji input give []."""
        assert analyze(text) == []

    def test_lone_surrogates_do_not_raise(self) -> None:
        """Lone surrogates act as separators instead of raising."""
        assert analyze("\ud800abc\udfff검색\udc00") == ["abc", "검색"]

    def test_control_and_format_characters_separate_or_vanish(self) -> None:
        """Soft hyphens disappear inside a word; control characters separate words."""
        assert analyze("hy\u00adphen") == analyze("hyphen")
        assert analyze("one\x00two") == ["one", "two"]

    def test_long_terms_are_truncated(self) -> None:
        """Runs longer than MAX_TERM_LENGTH are cut to that length."""
        assert analyze("a" * 1000) == ["a" * MAX_TERM_LENGTH]

    def test_non_string_input_does_not_raise(self) -> None:
        """None and bytes are tolerated rather than raising."""
        assert analyze(None) == []  # type: ignore[arg-type]
        assert analyze(b"vector \xff search") == ["vector", "search"]  # type: ignore[arg-type]

    def test_kiwi_failure_falls_back(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """If Kiwi fails, Hangul runs are indexed as they are instead of raising."""

        def broken(pieces: list[str]) -> list[None]:
            raise RuntimeError("kiwi unavailable")

        monkeypatch.setattr(analysis, "_tokenize_batch", broken)
        monkeypatch.setattr(analysis, "_tokenize_one", lambda piece: None)
        assert analyze("임베딩을 Running 검색") == ["임베딩을", "run", "검색"]

    def test_deterministic(self) -> None:
        """The same input always gives the same output."""
        text = "임베딩 모델을 HNSW index로 검색한다. Running policies!"
        assert analyze(text) == analyze(text) == analyze_many([text, text])[1]


class TestLongInput:
    """Long documents are split into pieces and still analysed completely."""

    def test_long_mixed_document(self) -> None:
        """A 100k+ character document is analysed, each line contributing terms."""
        line = "임베딩 모델을 HNSW index로 검색한다. Running policies matter."
        text = "\n".join([line] * 2500)
        assert len(text) > 100_000
        terms = analyze(text)
        assert terms[:8] == ["임베딩", "모델", "hnsw", "index", "검색", "run", "polici", "matter"]
        assert terms.count("임베딩") == 2500
        assert terms.count("polici") == 2500
        assert_safe(terms)

    def test_megabyte_single_line(self) -> None:
        """A 1 MB line without spaces returns promptly with one truncated term."""
        assert analyze("x" * 1_000_000) == ["x" * MAX_TERM_LENGTH]

    def test_long_korean_line_without_newlines(self) -> None:
        """A very long Korean line is cut at spaces, losing no words."""
        text = " ".join(["검색을"] * 20_000)
        assert analyze(text) == ["검색"] * 20_000

    def test_pieces_respect_the_limit_and_lose_nothing(self) -> None:
        """Pieces stay within MAX_PIECE_CHARS and keep every non-space character."""
        text = ("가나다 " * 1500) + "\n" + ("라" * 5000) + "\n\n" + "짧은 줄\n" * 900
        pieces = analysis._split_pieces(text)
        assert all(0 < len(piece) <= MAX_PIECE_CHARS for piece in pieces)
        assert "".join("".join(pieces).split()) == "".join(text.split())


class TestDetectLanguage:
    """Language detection from the Hangul and Latin letter shares."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("안녕하세요. 문서 검색 서비스입니다.", "ko"),
            ("The quick brown fox jumps over the lazy dog.", "en"),
            ("임베딩 모델을 HNSW index로 검색한다", "mixed"),
            ("한국어 문서 검색 서비스에 오신 것을 환영합니다 AI", "ko"),
            ("A long English sentence with a single 단어", "en"),
            ("", "en"),
            ("12345 !!! 😀", "en"),
        ],
    )
    def test_detect_language(self, text: str, expected: str) -> None:
        """Samples of each class are recognised; text without letters is "en"."""
        assert detect_language(text) == expected

    def test_hangul_ratio(self) -> None:
        """The ratio is Hangul letters over all letters, 0.0 without letters."""
        assert hangul_ratio("검색") == 1.0
        assert hangul_ratio("search") == 0.0
        assert hangul_ratio("") == 0.0
        assert hangul_ratio("123 !!") == 0.0
        assert hangul_ratio("검색ab") == pytest.approx(0.5)


class TestBatch:
    """analyze_many is a faster but equivalent analyze."""

    def test_matches_analyze(self) -> None:
        """analyze_many(texts) == [analyze(t) for t in texts]."""
        texts = [
            "임베딩은 검색했다",
            "",
            "Running policies",
            "임베딩 모델을 HNSW index로 검색한다\n" * 300,
            "!!!",
            "English only\nwith 한국어 line",
        ]
        assert analyze_many(texts) == [analyze(text) for text in texts]

    def test_empty_batch(self) -> None:
        """No texts gives no results."""
        assert analyze_many([]) == []

    def test_concurrent_callers_agree(self) -> None:
        """Threads sharing the Kiwi singleton get the same results as one thread."""
        texts = [f"문서 {i}번을 검색했다 running tests {i}" for i in range(40)]
        expected = [analyze(text) for text in texts]
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert list(pool.map(analyze, texts)) == expected


class TestLaziness:
    """Importing the module is cheap: Kiwi is created on first Korean input."""

    def test_import_does_not_load_kiwi(self) -> None:
        """A fresh interpreter importing the module neither imports nor builds Kiwi."""
        code = (
            "import sys, documents.analysis as a\n"
            "assert a._kiwi is None\n"
            "assert 'kiwipiepy' not in sys.modules\n"
            "assert a.analyze('plain English') == ['plain', 'english']\n"
            "assert 'kiwipiepy' not in sys.modules\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)


if given is not None:

    class TestProperties:
        """Property-based checks over arbitrary text."""

        @settings(
            max_examples=300,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(st.text(max_size=300))
        def test_any_text_gives_safe_terms(self, text: str) -> None:
            """analyze never raises and every term is from the safe alphabet."""
            assert_safe(analyze(text))

        @settings(max_examples=100, deadline=None)
        @given(
            st.lists(
                st.text(
                    alphabet=st.sampled_from("검색임베딩모델을는다 abcXYZ'-_.\n0123"),
                    max_size=80,
                ),
                max_size=6,
            )
        )
        def test_batch_matches_single(self, texts: list[str]) -> None:
            """analyze_many agrees with analyze on arbitrary batches."""
            assert analyze_many(texts) == [analyze(text) for text in texts]
