"""Decode the bytes of a text upload (txt, md, csv, html) into a string.

The order, first fit wins:

1. A byte order mark decides: UTF-8 with BOM, or UTF-16 (LE/BE) with BOM.
   A file that declares itself this way is never decoded as anything else.
2. UTF-8, strictly. Almost every file is this; it is never second-guessed.
3. An encoding the file declares itself (``<meta charset>`` in HTML), strictly.
4. Legacy Korean: CP949 (a superset of EUC-KR), strictly, when the result is
   Korean: its non-ASCII letters are mostly Hangul, or it has some Hangul and
   charset-normalizer's confident best guess is a Korean encoding.

Anything else is refused with the first invalid UTF-8 byte and its offset, or
as binary content. Single-byte code pages (Latin-1, CP1252, ...) are
deliberately not guessed: every byte string decodes in them, so a fit is no
evidence, and the detector's "confident" answers for short Western text are
wrong too often (``b"caf\\xe9 au lait"`` comes back as CP1006 Farsi, French as
CP1250 with "ê" read as "ę"). A clear refusal is better than indexing mojibake.
"""

from __future__ import annotations

import codecs
import logging
import re
from typing import Final

import charset_normalizer

from documents.ingestion.extract import limits
from documents.ingestion.extract.common import CONTROL_CHARS, ExtractionError

logger = logging.getLogger(__name__)

__all__ = ["TextDecodeError", "codec_for_label", "decode_text", "peek_text"]

_UTF16_BOMS: Final = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_CONTROL_DELETE_TABLE: Final = {ord(c): None for c in CONTROL_CHARS}
# Hangul syllables and compatibility jamo (ㄱ..ㅣ, as in "ㅋㅋ"): what CP949
# text written in Korean is made of, as opposed to its symbols and Hanja.
_HANGUL_RE: Final = re.compile("[\u3131-\u318e\uac00-\ud7a3]+")
# Letters outside ASCII (Hangul, Hanja, accented Latin...), not symbols: box
# drawing and "※" are common in Korean documents but say nothing about them.
_NON_ASCII_LETTER_RE: Final = re.compile(r"[^\W\d_\x00-\x7f]+")
# charset-normalizer's names for the encodings decoded as CP949 here.
_KOREAN_DETECTIONS: Final = frozenset({"cp949", "euc_kr"})
# Declared labels that are decoded with a superset, as browsers do
# (https://encoding.spec.whatwg.org/#names-and-labels).
_SUPERSET_CODECS: Final = {"euc_kr": "cp949", "latin_1": "cp1252", "ascii": "cp1252"}


class TextDecodeError(ExtractionError):
    """The bytes are not text in any encoding accepted here."""


def decode_text(data: bytes, *, declared_encoding: str | None = None) -> str:
    """Decode a text upload, refusing binary data and undecodable text.

    ``declared_encoding`` is a Python codec name the file declares for itself
    (see :func:`codec_for_label`); it is tried after UTF-8.

    Raises:
        TextDecodeError: binary content, or text in no accepted encoding.
    """
    if data.startswith(_UTF16_BOMS):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise TextDecodeError(
                f"not valid UTF-16 text (invalid data at offset {exc.start})"
            ) from exc
        # UTF-16 bytes are full of NULs, so judge the decoded characters.
        if "\x00" in text:
            raise TextDecodeError("binary content, not text")
        return _check_not_binary(text)

    if b"\x00" in data:
        raise TextDecodeError("binary content, not text")
    has_bom = data.startswith(codecs.BOM_UTF8)
    body = data[len(codecs.BOM_UTF8) :] if has_bom else data
    try:
        return _check_not_binary(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        utf8_error = exc
    # A BOM declares UTF-8, so its errors are real; otherwise try the rest.
    fallback = (
        None if has_bom else _decode_declared(body, declared_encoding) or _decode_korean(body)
    )
    if fallback is not None:
        return _check_not_binary(fallback)

    # Decide between "binary junk" and "text in an unknown encoding" by how
    # much of it is undecodable.
    lenient = body.decode("utf-8", errors="replace")
    if _control_ratio(lenient, count_replacement=True) > limits.BINARY_THRESHOLD:
        raise TextDecodeError("binary content, not text") from utf8_error
    offset = utf8_error.start + (len(data) - len(body))  # report in file terms
    reason = (
        f"not valid UTF-8 text (invalid byte 0x{body[utf8_error.start]:02x} at offset {offset})"
    )
    if not has_bom:
        reason += " and no other encoding fits"
    raise TextDecodeError(reason) from utf8_error


def peek_text(data: bytes, *, chars: int) -> str:
    """Return about the first ``chars`` characters, decoded leniently.

    For sniffing only (an HTML start tag, a ``<meta charset>``): markup is
    ASCII in every encoding accepted here except UTF-16, which has a BOM.
    """
    if data.startswith(_UTF16_BOMS):
        return data[: 2 * chars + 2].decode("utf-16", errors="replace")[:chars]
    return data[: 4 * chars].decode("utf-8", errors="replace").lstrip("\ufeff")[:chars]


def codec_for_label(label: str) -> str | None:
    """Map an encoding label from a document to a Python codec, else None.

    Labels naming UTF-16/32 are ignored: a declaration inside the text can only
    be read if the text is ASCII-compatible, so such a label is wrong.
    """
    try:
        name = codecs.lookup(label.strip()).name.replace("-", "_")
    except (LookupError, ValueError):
        return None
    if name.startswith(("utf_16", "utf_32")):
        return None
    return _SUPERSET_CODECS.get(name, name)


def _decode_declared(body: bytes, codec: str | None) -> str | None:
    """Decode with the encoding the file declares, or return None."""
    if codec is None:
        return None
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        logger.debug("Declared encoding %s does not fit", codec)
        return None


def _decode_korean(body: bytes) -> str | None:
    """Decode legacy Korean text (CP949 / EUC-KR), or return None.

    A strict CP949 decode is required: random bytes almost never pass it,
    and Latin-1 text fails it at the first accented lowercase letter. The
    result must then read as Korean: Hangul makes up most of its non-ASCII
    letters (symbols and box drawing do not count), or, for text heavy in
    Hanja, there is some Hangul and charset-normalizer's confident best
    guess is a Korean encoding.
    """
    try:
        text = body.decode("cp949")
    except UnicodeDecodeError:
        return None
    hangul = _char_count(_HANGUL_RE, text)
    if not hangul:
        return None
    if hangul / _char_count(_NON_ASCII_LETTER_RE, text) >= limits.MOSTLY_HANGUL_SHARE:
        return text
    best = charset_normalizer.from_bytes(body).best()
    if (
        best is not None
        and best.encoding in _KOREAN_DETECTIONS
        and best.chaos <= limits.MAX_DETECTION_CHAOS
    ):
        return text
    logger.debug("CP949 decode is not Korean enough (best guess %r)", best and best.encoding)
    return None


def _char_count(pattern: re.Pattern[str], text: str) -> int:
    """Count the characters matched by a character-class pattern, in C."""
    return len(text) - len(pattern.sub("", text))


def _check_not_binary(text: str) -> str:
    """Return text unchanged unless it is mostly control characters."""
    if _control_ratio(text) > limits.BINARY_THRESHOLD:
        raise TextDecodeError("binary content, not text")
    return text


def _control_ratio(text: str, *, count_replacement: bool = False) -> float:
    """Return the share of characters that are controls (or U+FFFD if asked)."""
    if not text:
        return 0.0
    # translate() deletes in C, which keeps this linear and fast on big files.
    bad = len(text) - len(text.translate(_CONTROL_DELETE_TABLE))
    if count_replacement:
        bad += text.count("\ufffd")
    return bad / len(text)
