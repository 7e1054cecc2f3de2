"""Tests for search.ranking.query: the web-search query syntax."""

from __future__ import annotations

import pytest

from documents.analysis import is_safe_term
from search.ranking.query import (
    MAX_QUERY_CHARS,
    MAX_TERMS,
    ParsedQuery,
    parse_query,
    phrase_tsquery,
)

METACHARACTER_QUERIES = [
    "& | ! ( ) : * < > ' \\ ;",
    "'; DROP TABLE documents_document; --",
    "policy' | 'x':* & !(y) <-> z",
    "a:b*c!d",
    "\\'\\\\'",
    '"""" -"" - -- ---',
    "((((((((",
    "<script>alert(1)</script>",
    "%s %(name)s {0} $1",
    "\x00\x01 null\x00byte \u202e rtl",
    "임베딩은 & 검색 | !",
]


def assert_safe(parsed: ParsedQuery) -> None:
    """Assert every term, phrase term and excluded term is from the safe alphabet."""
    words = [
        *parsed.terms,
        *parsed.excluded,
        *(t for phrase in parsed.phrases for t in phrase),
        *(t for phrase in parsed.excluded_phrases for t in phrase),
    ]
    for word in words:
        assert is_safe_term(word), word


class TestPlainWords:
    """Plain words are analysed alternatives."""

    def test_words_are_analysed_terms(self) -> None:
        """Words become stems, with stopwords dropped and duplicates merged."""
        parsed = parse_query("The password policies and the password")
        assert parsed.terms == ("password", "polici")
        assert parsed.phrases == ()
        assert parsed.excluded == ()

    def test_or_is_ignored(self) -> None:
        """OR between words changes nothing: words are alternatives already."""
        assert parse_query("policy OR procedure").terms == parse_query("policy procedure").terms
        assert parse_query("policy or procedure | audit").terms == ("polici", "procedur", "audit")
        assert parse_query("임베딩 또는 검색").terms == ("임베딩", "검색")

    @pytest.mark.parametrize("query", ["임베딩은", "임베딩을", "임베딩", "임베딩이", "임베딩의"])
    def test_korean_particles_normalised(self, query: str) -> None:
        """A Korean noun with a particle is the bare noun."""
        assert parse_query(query).terms == ("임베딩",)

    def test_mixed_korean_english(self) -> None:
        """Korean and English words in one query are both analysed."""
        assert parse_query("임베딩은 search engines").terms == ("임베딩", "search", "engin")

    def test_term_count_is_capped(self) -> None:
        """At most MAX_TERMS distinct terms are kept."""
        parsed = parse_query(" ".join(f"word{i}" for i in range(MAX_TERMS * 2)))
        assert len(parsed.terms) == MAX_TERMS


class TestPhrases:
    """A quoted phrase is required, its terms in order."""

    def test_phrase_terms_are_required_in_order(self) -> None:
        """A phrase is recorded as analysed terms and also ranks as terms."""
        parsed = parse_query('"password policies" audit')
        assert parsed.phrases == (("password", "polici"),)
        assert parsed.terms == ("password", "polici", "audit")

    def test_korean_phrase_is_normalised(self) -> None:
        """Particles inside a phrase are dropped like anywhere else."""
        assert parse_query('"임베딩은 검색"').phrases == (("임베딩", "검색"),)

    def test_unbalanced_quote_closes_at_the_end(self) -> None:
        """An unclosed quote runs to the end of the query."""
        parsed = parse_query('audit "password policies')
        assert parsed.phrases == (("password", "polici"),)
        assert parsed.terms == ("password", "polici", "audit")

    def test_stopword_phrase_is_empty(self) -> None:
        """A phrase of stopwords only adds no constraint."""
        parsed = parse_query('"the of" audit')
        assert parsed.phrases == ()
        assert parsed.terms == ("audit",)

    def test_phrase_tsquery_joins_terms_in_sequence(self) -> None:
        """A phrase becomes a followed-by tsquery of quoted terms."""
        assert phrase_tsquery(("password", "polici")) == "'password' <-> 'polici'"


class TestExclusions:
    """-word and -"phrase" exclude documents."""

    def test_excluded_word(self) -> None:
        """A word after a minus is excluded, analysed, and not a term."""
        parsed = parse_query("policy -drafts")
        assert parsed.terms == ("polici",)
        assert parsed.excluded == ("draft",)
        assert parsed.excluded_phrases == ()

    def test_excluded_word_removed_from_terms(self) -> None:
        """A word both wanted and excluded is excluded."""
        parsed = parse_query("policy draft -drafts")
        assert parsed.terms == ("polici",)
        assert parsed.excluded == ("draft",)

    def test_excluded_korean_word(self) -> None:
        """An excluded Korean word loses its particle."""
        assert parse_query("검색 -임베딩은").excluded == ("임베딩",)

    def test_excluded_phrase(self) -> None:
        """A quoted phrase after a minus is an excluded phrase."""
        parsed = parse_query('policy -"draft version"')
        assert parsed.terms == ("polici",)
        assert parsed.excluded_phrases == (("draft", "version"),)
        assert parsed.excluded == ()

    def test_excluded_one_word_phrase_is_an_excluded_word(self) -> None:
        """A quoted single word after a minus excludes that word."""
        parsed = parse_query('policy -"drafts"')
        assert parsed.excluded == ("draft",)
        assert parsed.excluded_phrases == ()

    def test_excluded_hyphenated_word_is_a_phrase(self) -> None:
        """-e-mail excludes the phrase "e mail", not every document with "mail"."""
        parsed = parse_query("contact -e-mail")
        assert parsed.excluded == ()
        assert parsed.excluded_phrases == (("e", "mail"),)

    def test_excluded_korean_compound_is_a_phrase(self) -> None:
        """-검색엔진 excludes the compound, not every document with 검색."""
        parsed = parse_query("검색 -검색엔진은")
        assert parsed.terms == ("검색",)
        assert parsed.excluded == ()
        assert parsed.excluded_phrases == (("검색", "엔진"),)

    def test_lone_minus_is_no_operator(self) -> None:
        """A minus on its own excludes nothing."""
        parsed = parse_query("policy - audit")
        assert parsed.terms == ("polici", "audit")
        assert parsed.excluded == ()

    def test_only_exclusions_is_empty(self) -> None:
        """A query that only excludes has nothing to rank by."""
        assert parse_query('-draft -"old version"').is_empty is True


class TestHostileInput:
    """Any input parses; only safe terms come out."""

    @pytest.mark.parametrize("query", METACHARACTER_QUERIES)
    def test_metacharacters_never_raise(self, query: str) -> None:
        """tsquery and SQL metacharacters are separators, never term characters."""
        assert_safe(parse_query(query))

    def test_sql_injection_is_just_words(self) -> None:
        """An injection attempt parses to its plain words."""
        parsed = parse_query("'; DROP TABLE documents_document; --")
        assert parsed.terms == ("drop", "tabl", "document")

    def test_very_long_query_is_truncated(self) -> None:
        """Queries are cut to MAX_QUERY_CHARS and flagged."""
        parsed = parse_query("policy " * 1000)
        assert parsed.truncated is True
        assert len(parsed.text) == MAX_QUERY_CHARS
        assert parsed.terms == ("polici",)

    def test_short_query_is_not_truncated(self) -> None:
        """A normal query keeps its full text."""
        parsed = parse_query("policy")
        assert parsed.truncated is False
        assert parsed.text == "policy"

    def test_whitespace_is_normalised(self) -> None:
        """Runs of whitespace and control characters collapse to one space."""
        assert parse_query("  password\t\n policy\x00 ").text == "password policy"

    @pytest.mark.parametrize("query", ["", " ", "\t\n  \r", "\x00", '""', '" "', "OR", "the"])
    def test_blank_query_is_empty(self, query: str) -> None:
        """Blank queries, empty quotes and stopwords alone give no terms."""
        assert parse_query(query).is_empty is True

    def test_none_is_empty(self) -> None:
        """A missing query parses as empty."""
        assert parse_query(None).is_empty is True  # type: ignore[arg-type]


class TestSemanticText:
    """The embedding model reads the query without operators."""

    def test_operators_stripped(self) -> None:
        """Quotes, exclusions and OR are removed; words stay as typed."""
        parsed = parse_query('"Password policies" OR audit -draft -"old version" | 또는')
        assert parsed.semantic_text == "Password policies audit"

    def test_korean_kept_as_typed(self) -> None:
        """Korean words keep their particles: the model reads natural text."""
        assert parse_query("임베딩은 무엇인가").semantic_text == "임베딩은 무엇인가"

    def test_unbalanced_quote_stripped(self) -> None:
        """An unclosed quote is not passed to the model."""
        assert parse_query('audit "password policy').semantic_text == "audit password policy"

    def test_excluded_only_is_blank(self) -> None:
        """A query of exclusions has no semantic text."""
        assert parse_query('-draft -"old version"').semantic_text == ""
