"""Keyword text analysis shared by indexing and querying.

The same :func:`analyze` runs over document text at index time and over the
user's query at search time, so both sides agree on what a "term" is. Terms
feed ``to_tsvector('simple', ' '.join(terms))`` and BM25 ranking, so every term
is a plain token drawn from the safe alphabet described by
:data:`SAFE_TERM_PATTERN`:

* ASCII digits and lowercase letters ``0-9 a-z``;
* lowercase Latin letters from Latin-1, Latin Extended-A/B and Latin Extended
  Additional (``ß é ñ ǆ ệ`` ...), lowercase Greek and Cyrillic letters;
* Hangul syllables ``가-힣``;
* CJK unified ideographs (Hanja), including Extension A.

Nothing else survives: no whitespace, punctuation, tsquery metacharacters
(``& | ! ( ) : * < > ' " \\``) or underscore (PostgreSQL's default text-search
parser splits words at ``_``, so a term containing one would become two
lexemes). Characters outside the alphabet act as separators. Terms are at most
:data:`MAX_TERM_LENGTH` characters; longer runs are truncated.

Pipeline:

1. Replace control characters, lone surrogates and line/paragraph separators
   with spaces, drop invisible format characters, NFKC-normalise, lowercase,
   and unify typographic apostrophes.
2. Split text into pieces of at most :data:`MAX_PIECE_CHARS` characters at
   line or word boundaries (Kiwi is slow and memory-hungry on huge strings).
3. Pieces without Hangul use a fast regex tokenizer. Pieces with Hangul go
   through Kiwi in one batch; Latin-script words inside them are handed to
   Kiwi as pre-tokenized ``SL`` spans so that they are analysed by exactly
   the same English rules as in the fast path.
4. English words: Snowball English stopwords removed, possessive ``'s``
   stripped, Snowball English stemming. Korean: content morphemes only
   (see :data:`KOREAN_KEEP_TAGS`).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

import snowballstemmer

if TYPE_CHECKING:
    from kiwipiepy import Kiwi, Token

__all__ = [
    "ENGLISH_STOPWORDS",
    "KOREAN_KEEP_TAGS",
    "MAX_PIECE_CHARS",
    "MAX_TERM_LENGTH",
    "SAFE_TERM_PATTERN",
    "TITLE_WEIGHT",
    "analyze",
    "analyze_many",
    "detect_language",
    "document_postings",
    "hangul_ratio",
    "is_safe_term",
]

MAX_TERM_LENGTH: Final[int] = 60
"""Longest term emitted; longer runs (hashes, base64, garbage) are truncated."""

MAX_PIECE_CHARS: Final[int] = 2000
"""Largest string handed to Kiwi in one go."""

MIXED_MIN_SHARE: Final[float] = 0.2
"""Share of letters each script needs before text counts as ``"mixed"``."""

KIWI_BATCH_PIECES: Final[int] = 256
"""Pieces per Kiwi batch call; bounds how long one call holds the Kiwi lock."""

KIWI_MAX_WORKERS: Final[int] = 4
"""Upper bound on Kiwi's internal worker threads."""

_LOWER_LATIN: Final[str] = "a-z\u00df-\u00f6\u00f8-\u00ff\u0100-\u024f\u1e00-\u1eff"
_LOWER_GREEK: Final[str] = "\u0390\u03ac-\u03ce"
_LOWER_CYRILLIC: Final[str] = "\u0430-\u045f"
_HANGUL_SYLLABLES: Final[str] = "\uac00-\ud7a3"
_CJK: Final[str] = "\u3400-\u4dbf\u4e00-\u9fff"

# Letters and digits of non-Korean, non-CJK words (English and friends).
_WORD_CHARS: Final[str] = "0-9" + _LOWER_LATIN + _LOWER_GREEK + _LOWER_CYRILLIC

SAFE_TERM_PATTERN: Final[str] = f"^[{_WORD_CHARS}{_HANGUL_SYLLABLES}{_CJK}]{{1,{MAX_TERM_LENGTH}}}$"
"""Regular expression every emitted term matches (see the module docstring)."""

_SAFE_TERM_RE: Final[re.Pattern[str]] = re.compile(SAFE_TERM_PATTERN)

# A word: alphanumeric run, optionally joined by inner apostrophes ("user's").
_WORD: Final[str] = f"[{_WORD_CHARS}]+(?:'[{_WORD_CHARS}]+)*"
# Fast path tokens: words, or runs of Hanja (kept apart, as Kiwi tags them SH).
_FAST_TOKEN_RE: Final[re.Pattern[str]] = re.compile(f"{_WORD}|[{_CJK}]+")
_WORD_RE: Final[re.Pattern[str]] = re.compile(_WORD)
# Fallback tokens when Kiwi fails on a piece: words, Hanja runs, Hangul runs.
_FALLBACK_TOKEN_RE: Final[re.Pattern[str]] = re.compile(f"{_WORD}|[{_CJK}]+|[{_HANGUL_SYLLABLES}]+")
# Safe runs inside a Kiwi morpheme form ("3.14" -> "3", "14").
_SAFE_RUN_RE: Final[re.Pattern[str]] = re.compile(f"[{_WORD_CHARS}{_HANGUL_SYLLABLES}{_CJK}]+")
_LETTER_RE: Final[re.Pattern[str]] = re.compile(f"[{_LOWER_LATIN}{_LOWER_GREEK}{_LOWER_CYRILLIC}]")

# Any Hangul: syllables, conjoining jamo (NFKC turns compatibility jamo such
# as "ㅋ" into these) and the extended jamo blocks.
_HANGUL_CHARS: Final[str] = "\u1100-\u11ff\u3131-\u318e\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff"
_HANGUL_RE: Final[re.Pattern[str]] = re.compile(f"[{_HANGUL_CHARS}]")
_HANGUL_RUN_RE: Final[re.Pattern[str]] = re.compile(f"[{_HANGUL_CHARS}]+")
_LATIN_RUN_RE: Final[re.Pattern[str]] = re.compile(
    "[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]+"
)

# Invisible joiners/soft hyphens sit inside words, so they are deleted.
_DELETE_RE: Final[re.Pattern[str]] = re.compile("[\u00ad\u200c\u200d\u2060\ufeff]")
# C0/C1 controls (newline kept as the piece separator), other format
# characters, line/paragraph separators and lone surrogates become spaces;
# surrogates would make Kiwi's UTF-8 conversion fail.
_SPACE_RE: Final[re.Pattern[str]] = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u180e\u200b\u200e\u200f"
    "\u2028-\u202e\u2061-\u206f\ufff9-\ufffb\ud800-\udfff]"
)
_APOSTROPHE_RE: Final[re.Pattern[str]] = re.compile("[\u2018\u2019\u02bc\u2032]")

_SNOWBALL_ENGLISH_STOP_TEXT: Final[str] = """
    i me my myself we our ours ourselves you your yours yourself yourselves
    he him his himself she her hers herself it its itself they them their
    theirs themselves what which who whom this that these those am is are was
    were be been being have has had having do does did doing would should
    could ought i'm you're he's she's it's we're they're i've you've we've
    they've i'd you'd he'd she'd we'd they'd i'll you'll he'll she'll we'll
    they'll isn't aren't wasn't weren't hasn't haven't hadn't doesn't don't
    didn't won't wouldn't shan't shouldn't can't cannot couldn't mustn't let's
    that's who's what's here's there's when's where's why's how's a an the and
    but if or because as until while of at by for with about against between
    into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all
    any both each few more most other some such no nor not only own same so
    than too very
"""

ENGLISH_STOPWORDS: Final[frozenset[str]] = frozenset(_SNOWBALL_ENGLISH_STOP_TEXT.split())
"""The Snowball project's English stopword list (snowballstemmer ships none)."""

KOREAN_KEEP_TAGS: Final[frozenset[str]] = frozenset(
    {
        "NNG",  # common noun
        "NNP",  # proper noun
        "NR",  # numeral noun (하나, 첫째)
        "VV",  # verb stem (찾다 -> 찾)
        "VA",  # adjective stem (빠르다 -> 빠르)
        "XR",  # root (깨끗하다 -> 깨끗)
        "SN",  # number
        "SL",  # foreign (Latin-script) word
        "SH",  # Hanja
    }
)
"""Kiwi POS tags whose morphemes become terms.

Dropped: pronouns (NP) and bound nouns (NNB) are stopword-like; particles (J*),
endings (E*), affixes (XP*, XS*), copulas (VCP, VCN), auxiliaries (VX),
determiners (MM), adverbs (MAG, MAJ), interjections (IC), symbols (SF, SP,
SS*, SE, SO, SW, SB) and everything else. Irregular-conjugation variants
(``VV-I``, ``VA-R`` ...) are kept by their base tag.
"""

# Light verbs and adjectives that carry next to no meaning on their own.
_KOREAN_STOP_STEMS: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        ("하", "VV"),
        ("되", "VV"),
        ("있", "VV"),
        ("있", "VA"),
        ("없", "VA"),
        ("같", "VA"),
    }
)

_STEM_CACHE_SIZE: Final[int] = 1 << 16

_stemmer = snowballstemmer.stemmer("english")
# Snowball stemmer objects keep per-call state, so concurrent use must be serialised.
_stemmer_lock = threading.Lock()

_kiwi: Kiwi | None = None
_kiwi_init_lock = threading.Lock()
# Whether one Kiwi instance tolerates concurrent calls is undocumented, so
# calls are serialised; each batch call is multithreaded inside Kiwi anyway.
_kiwi_call_lock = threading.Lock()


def is_safe_term(term: str) -> bool:
    """Return whether ``term`` is drawn from the safe alphabet and short enough."""
    return _SAFE_TERM_RE.fullmatch(term) is not None


def hangul_ratio(text: str) -> float:
    """Return the share of Hangul characters among letters, 0.0 without letters."""
    text = _normalize_for_counting(text)
    letters = sum(map(str.isalpha, text))
    if not letters:
        return 0.0
    return _count_run_chars(_HANGUL_RUN_RE, text) / letters


def detect_language(text: str) -> str:
    """Return ``"ko"``, ``"en"`` or ``"mixed"`` from the Hangul and Latin letter shares.

    Text counts as mixed when Hangul and Latin letters each make up at least
    :data:`MIXED_MIN_SHARE` of its letters; otherwise the larger script wins.
    Text without letters (and text in other scripts) is reported as ``"en"``.
    """
    text = _normalize_for_counting(text)
    letters = sum(map(str.isalpha, text))
    if not letters:
        return "en"
    hangul = _count_run_chars(_HANGUL_RUN_RE, text) / letters
    latin = _count_run_chars(_LATIN_RUN_RE, text) / letters
    if hangul >= MIXED_MIN_SHARE and latin >= MIXED_MIN_SHARE:
        return "mixed"
    return "ko" if hangul > latin else "en"


def analyze(text: str) -> list[str]:
    """Return index/query terms of ``text`` in text order, duplicates kept."""
    return analyze_many([text])[0]


def analyze_many(texts: Sequence[str]) -> list[list[str]]:
    """Return ``[analyze(t) for t in texts]``, batching all Korean pieces through Kiwi."""
    results: list[list[str]] = []
    # Every piece that needs Kiwi, with (text index, slot index) of its result.
    kiwi_pieces: list[str] = []
    kiwi_targets: list[tuple[int, int]] = []
    # Per text: finished term lists for fast pieces, None where Kiwi fills in.
    slots_per_text: list[list[list[str] | None]] = []
    for text_index, raw in enumerate(texts):
        text = _normalize(raw)
        slots: list[list[str] | None] = []
        if _HANGUL_RE.search(text) is None:
            # No Korean at all: no need to cut the text up.
            slots.append(_fast_terms(text))
        else:
            for piece in _split_pieces(text):
                if _HANGUL_RE.search(piece) is None:
                    slots.append(_fast_terms(piece))
                else:
                    kiwi_pieces.append(piece)
                    kiwi_targets.append((text_index, len(slots)))
                    slots.append(None)
        slots_per_text.append(slots)

    for (text_index, slot_index), terms in zip(kiwi_targets, _kiwi_terms(kiwi_pieces), strict=True):
        slots_per_text[text_index][slot_index] = terms

    for slots in slots_per_text:
        merged: list[str] = []
        for piece_terms in slots:
            if piece_terms:
                merged.extend(piece_terms)
        results.append(merged)
    return results


def _normalize(text: object) -> str:
    """Return ``text`` cleaned, NFKC-normalised and lowercased; never raises."""
    if not isinstance(text, str):
        if text is None:
            return ""
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("utf-8", errors="replace")
        else:
            text = str(text)
    if not text:
        return ""
    text = _DELETE_RE.sub("", text)
    text = _SPACE_RE.sub(" ", text)
    text = unicodedata.normalize("NFKC", text).lower()
    return _APOSTROPHE_RE.sub("'", text)


def _normalize_for_counting(text: object) -> str:
    """Return ``text`` cleaned and NFKC-normalised, case preserved."""
    if not isinstance(text, str):
        return _normalize(text)
    return unicodedata.normalize("NFKC", _SPACE_RE.sub(" ", text))


def _count_run_chars(pattern: re.Pattern[str], text: str) -> int:
    """Return how many characters of ``text`` fall inside matches of ``pattern``."""
    return sum(match.end() - match.start() for match in pattern.finditer(text))


def _split_pieces(text: str) -> list[str]:
    """Split normalised text into non-blank pieces of at most MAX_PIECE_CHARS.

    Whole lines are packed together (fewer Kiwi calls); over-long lines are cut
    at the last space inside the limit, or hard at the limit without one.
    """
    pieces: list[str] = []
    buffer: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal size
        if buffer:
            joined = "\n".join(buffer)
            if not joined.isspace():
                pieces.append(joined)
            buffer.clear()
            size = 0

    for line in text.split("\n"):
        if len(line) > MAX_PIECE_CHARS:
            flush()
            pieces.extend(p for p in _split_long_line(line) if p and not p.isspace())
            continue
        if buffer and size + len(line) + 1 > MAX_PIECE_CHARS:
            flush()
        buffer.append(line)
        size += len(line) + 1
    flush()
    return pieces


def _split_long_line(line: str) -> Iterator[str]:
    """Yield chunks of ``line`` no longer than MAX_PIECE_CHARS, cut at spaces."""
    start = 0
    end = len(line)
    while end - start > MAX_PIECE_CHARS:
        cut = line.rfind(" ", start, start + MAX_PIECE_CHARS)
        if cut <= start:
            yield line[start : start + MAX_PIECE_CHARS]
            start += MAX_PIECE_CHARS
        else:
            yield line[start:cut]
            start = cut + 1
    yield line[start:]


def _fast_terms(text: str) -> list[str]:
    """Return terms of normalised text that contains no Hangul (no Kiwi needed)."""
    terms: list[str] = []
    for match in _FAST_TOKEN_RE.finditer(text):
        terms.extend(_word_terms(match.group()))
    return terms


def _word_terms(word: str) -> tuple[str, ...]:
    """Return the terms of one lowercased word (or Hanja run)."""
    if len(word) > MAX_TERM_LENGTH:
        # Not a natural-language word: skip stemming, keep the cache small.
        return tuple(part[:MAX_TERM_LENGTH] for part in word.split("'") if part)
    return _cached_word_terms(word)


@functools.lru_cache(maxsize=_STEM_CACHE_SIZE)
def _cached_word_terms(word: str) -> tuple[str, ...]:
    """Return the terms of a short word: stopwords out, possessives off, stemmed."""
    if word in ENGLISH_STOPWORDS:
        return ()
    if word.endswith("'s"):
        word = word[:-2]
    terms: list[str] = []
    for part in word.split("'"):
        if not part or part in ENGLISH_STOPWORDS:
            continue
        if _LETTER_RE.search(part) is not None:
            with _stemmer_lock:
                part = _stemmer.stemWord(part)
        terms.append(part)
    return tuple(terms)


def _get_kiwi() -> Kiwi:
    """Return the process-wide Kiwi instance, creating it on first use."""
    global _kiwi
    kiwi = _kiwi
    if kiwi is None:
        with _kiwi_init_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                workers = max(1, min(KIWI_MAX_WORKERS, os.cpu_count() or 1))
                created = Kiwi(num_workers=workers)
                # Kiwi finishes loading lazily on the first call; do it here,
                # under the lock, rather than in a racing caller.
                created.tokenize("")
                _kiwi = created
            kiwi = _kiwi
    return kiwi


def _latin_spans(text: str) -> list[tuple[int, int, str]]:
    """Return Kiwi pre-tokenization spans: every word containing a letter, as SL.

    Pure digit runs stay with Kiwi, which tags them SN and separates them from
    attached Korean counters (2024년 -> 2024 + 년).
    """
    return [
        (match.start(), match.end(), "SL")
        for match in _WORD_RE.finditer(text)
        if _LETTER_RE.search(match.group()) is not None
    ]


def _kiwi_terms(pieces: list[str]) -> list[list[str]]:
    """Return terms for each Korean-bearing piece, in order."""
    if not pieces:
        return []
    results: list[list[str]] = []
    for start in range(0, len(pieces), KIWI_BATCH_PIECES):
        batch = pieces[start : start + KIWI_BATCH_PIECES]
        try:
            token_lists = _tokenize_batch(batch)
        except Exception:  # one bad piece must not fail the whole batch
            token_lists = [_tokenize_one(piece) for piece in batch]
        for piece, tokens in zip(batch, token_lists, strict=True):
            if tokens is None:
                results.append(_fallback_terms(piece))
            else:
                results.append(_morpheme_terms(tokens))
    return results


def _tokenize_batch(pieces: list[str]) -> list[list[Token] | None]:
    """Tokenize pieces with one multithreaded Kiwi call."""
    kiwi = _get_kiwi()
    with _kiwi_call_lock:
        # match_options=0: no URL/e-mail/hashtag/emoji matching, whose forms
        # would carry punctuation; Latin words arrive pre-tokenized instead.
        return list(kiwi.tokenize(pieces, match_options=0, pretokenized=_latin_spans))


def _tokenize_one(piece: str) -> list[Token] | None:
    """Tokenize one piece; None when Kiwi fails on it."""
    try:
        kiwi = _get_kiwi()
        with _kiwi_call_lock:
            return kiwi.tokenize(piece, match_options=0, pretokenized=_latin_spans)
    except Exception:  # fall back to a rough split rather than fail indexing
        return None


def _fallback_terms(piece: str) -> list[str]:
    """Return rough terms for a piece Kiwi could not analyse (Hangul runs as is)."""
    terms: list[str] = []
    for match in _FALLBACK_TOKEN_RE.finditer(piece):
        terms.extend(_word_terms(match.group()))
    return terms


def _morpheme_terms(tokens: list[Token]) -> list[str]:
    """Return terms from Kiwi tokens, keeping content morphemes only."""
    terms: list[str] = []
    for token in tokens:
        tag = token.tag
        base_tag = tag.split("-", 1)[0]
        if base_tag not in KOREAN_KEEP_TAGS:
            continue
        form = token.form.lower()
        if base_tag == "SL":
            for match in _WORD_RE.finditer(form):
                terms.extend(_word_terms(match.group()))
        elif (form, base_tag) not in _KOREAN_STOP_STEMS:
            terms.extend(run[:MAX_TERM_LENGTH] for run in _SAFE_RUN_RE.findall(form))
    return terms


# --- Postings -----------------------------------------------------------------

TITLE_WEIGHT: Final = 2.0
"""A title term counts as this many body occurrences (a simple BM25F)."""


def document_postings(
    *, title_terms: Sequence[str], body_terms: Sequence[str]
) -> tuple[dict[str, float], float]:
    """Return a document's keyword postings (term frequencies) and its BM25 length."""
    postings: dict[str, float] = dict(Counter(body_terms))
    for term, count in Counter(title_terms).items():
        postings[term] = postings.get(term, 0.0) + TITLE_WEIGHT * count
    length = len(body_terms) + TITLE_WEIGHT * len(title_terms)
    return postings, length
