"""Tests for search.ranking.highlight: escaped snippets with marked query terms."""

from __future__ import annotations

import re

import pytest

from search.ranking.highlight import SNIPPET_CHARS, highlight
from search.ranking.query import parse_query


def marked(snippet: str) -> list[str]:
    """The words inside <mark> tags, in order."""
    return re.findall(r"<mark>(.*?)</mark>", snippet)


def terms(query: str) -> tuple[str, ...]:
    return parse_query(query).terms


class TestMarking:
    """Only words that analyse to a query term are marked."""

    def test_marks_matching_words_only(self) -> None:
        """Words sharing only a prefix with a term stay unmarked."""
        snippet = highlight("The cat sat in a category of catalogues. Cats!", terms("cat"))
        assert marked(snippet) == ["cat", "Cats"]

    def test_marks_every_inflection(self) -> None:
        """A stem matches each word form that analyses to it."""
        snippet = highlight("One policy, many policies.", terms("policies"))
        assert marked(snippet) == ["policy", "policies"]

    def test_query_word_itself_is_marked(self) -> None:
        """A word typed in the query is marked where it occurs verbatim."""
        snippet = highlight("Read the password policy today.", terms("password policy"))
        assert marked(snippet) == ["password", "policy"]

    def test_case_preserved_in_mark(self) -> None:
        """The text is shown as written, whatever the case of the query."""
        assert marked(highlight("PASSWORD Password password", terms("password"))) == [
            "PASSWORD",
            "Password",
            "password",
        ]

    def test_no_terms_marks_nothing(self) -> None:
        """Without terms the text is only escaped."""
        snippet = highlight("a <b> c", ())
        assert snippet == "a &lt;b&gt; c"

    def test_no_hit_marks_nothing(self) -> None:
        """A text without the terms has no marks."""
        assert "<mark>" not in highlight("Nothing relevant here.", terms("password"))

    @pytest.mark.parametrize("word", ["임베딩을", "임베딩은", "임베딩이", "임베딩"])
    def test_korean_particle_forms_marked(self, word: str) -> None:
        """A Korean word with a particle is marked for its noun."""
        snippet = highlight(f"문서 {word} 사용한다", terms("임베딩"))
        assert marked(snippet) == [word]

    def test_korean_compound_marked(self) -> None:
        """A compound is marked for any of its morphemes."""
        snippet = highlight("검색엔진은 빠르다", terms("엔진"))
        assert marked(snippet) == ["검색엔진은"]

    def test_korean_prefix_alone_does_not_match(self) -> None:
        """A Korean word is not marked merely for starting like a term."""
        assert marked(highlight("검 검색 검사", terms("검색"))) == ["검색"]

    def test_mixed_script_word(self) -> None:
        """An English word with a Korean particle is marked for the English term."""
        assert marked(highlight("API를 호출한다", terms("api"))) == ["API를"]


class TestEscaping:
    """Everything is escaped; <mark> is the only markup produced."""

    def test_script_escaped(self) -> None:
        """A script tag in the text is shown as text."""
        snippet = highlight("<script>alert('policy')</script> policy", terms("policy"))
        assert "<script>" not in snippet
        assert "&lt;script&gt;" in snippet
        assert marked(snippet) == ["policy", "policy"]

    def test_only_mark_tags(self) -> None:
        """After removing <mark> tags no angle bracket is left."""
        text = '<img src=x onerror="alert(1)"> <b>bold</b> &amp; <a href="policy">policy</a>'
        snippet = highlight(text, terms("policy bold alert"))
        stripped = snippet.replace("<mark>", "").replace("</mark>", "")
        assert "<" not in stripped
        assert ">" not in stripped
        assert '"' not in stripped
        assert "&amp;amp;" in stripped

    def test_markup_in_terms_cannot_inject(self) -> None:
        """Even raw terms carrying markup never reach the output unescaped."""
        snippet = highlight("x <script> y", ("<script>", "script"))
        assert "<script>" not in snippet
        assert marked(snippet) == ["script"]

    def test_result_is_safe_string(self) -> None:
        """The snippet is marked safe for templates."""
        assert hasattr(highlight("policy", terms("policy")), "__html__")


class TestWindow:
    """Long text is cut to a window around the first hit."""

    def test_short_text_shown_whole(self) -> None:
        """A text shorter than the window is not cut."""
        text = "A short policy note."
        snippet = highlight(text, terms("policy"))
        assert snippet == "A short <mark>policy</mark> note."

    def test_window_around_first_hit(self) -> None:
        """The window starts shortly before the first hit, with ellipses."""
        text = "filler " * 200 + "the password rule " + "padding " * 200
        snippet = highlight(text, terms("password"))
        assert marked(snippet) == ["password"]
        assert snippet.startswith("… ")
        assert snippet.endswith(" …")
        plain = snippet.replace("<mark>", "").replace("</mark>", "")
        assert len(plain) <= SNIPPET_CHARS + 20 + 4
        before_hit = plain.index("password")
        assert 0 < before_hit <= SNIPPET_CHARS // 4 + 4

    def test_window_starts_at_word_boundary(self) -> None:
        """The window never begins inside a word."""
        text = "abcdefghij " * 100 + "password" + " klmnop" * 100
        snippet = highlight(text, terms("password"))
        plain = snippet.replace("<mark>", "").replace("</mark>", "")
        first_word = plain.removeprefix("… ").split()[0]
        assert first_word in {"abcdefghij", "password"}

    def test_hit_at_start_has_no_leading_ellipsis(self) -> None:
        """A hit near the start keeps the text's beginning."""
        text = "password " + "filler " * 200
        snippet = highlight(text, terms("password"))
        assert snippet.startswith("<mark>password</mark>")
        assert snippet.endswith(" …")

    def test_no_hit_shows_beginning(self) -> None:
        """Without a hit the window is the start of the text."""
        text = "opening words " + "filler " * 200
        snippet = highlight(text, terms("password"))
        assert snippet.startswith("opening words")
        assert snippet.endswith(" …")

    def test_korean_window(self) -> None:
        """A Korean hit deep in a long text is found and marked."""
        text = "일반적인 내용입니다. " * 60 + "임베딩을 사용합니다. " + "기타 문장. " * 60
        snippet = highlight(text, terms("임베딩"))
        assert marked(snippet) == ["임베딩을"]
        assert snippet.startswith("… ")
