"""Types and helpers shared by every format: errors, normalisation, titles.

Nothing here knows about a particular file format, so each format module and
the dispatcher in ``__init__`` can import it without import cycles.
"""

from __future__ import annotations

import io
import logging
import math
import re
import zipfile
from dataclasses import dataclass
from typing import Final, NamedTuple

from documents.ingestion.extract import limits
from documents.ingestion.extract.limits import ERROR_REASON_MAX_CHARS, TITLE_MAX_CHARS

logger = logging.getLogger(__name__)

__all__ = [
    "CONTROL_CHARS",
    "OLE_MAGIC",
    "ZIP_MAGIC",
    "CorruptArchiveError",
    "ExtractedText",
    "ExtractionError",
    "RawExtraction",
    "basename",
    "check_zip_bomb",
    "clean_title",
    "first_line_title",
    "format_mb",
    "normalise_text",
    "short_reason",
    "split_extension",
    "zip_member_names",
]

ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06")
#: OLE2 compound file (legacy .doc/.xls, and HWP 5.0): for the HWP extractor.
OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Control characters that plain text legitimately contains.
_TEXT_CONTROLS: Final = frozenset("\t\n\r\f\v")
CONTROL_CHARS: Final = frozenset(
    [chr(c) for c in range(0x20) if chr(c) not in _TEXT_CONTROLS] + ["\x7f"]
)
# str.translate table used by normalisation: page breaks become line breaks
# (so words on either side do not fuse) and other controls are dropped.
_NORMALISE_TABLE: Final = {ord(c): None for c in CONTROL_CHARS} | {
    ord("\f"): "\n",
    ord("\v"): "\n",
}
_BLANK_RUN_RE: Final = re.compile(r"\n{3,}")


class ExtractionError(ValueError):
    """Raised with a short user-facing reason the file could not be read."""


class CorruptArchiveError(ExtractionError):
    """The bytes start like a zip archive that cannot be opened.

    Raised while sniffing, before the format is known; the dispatcher turns it
    into "corrupt or unreadable DOCX: ..." when the name claims a zip-based
    format, and keeps this generic message otherwise.
    """

    def __init__(self, reason: str) -> None:
        super().__init__("unsupported file type: ZIP archive (corrupt)")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExtractedText:
    """Normalised text pulled out of one uploaded file."""

    text: str
    source_type: str
    title: str


class RawExtraction(NamedTuple):
    """What a format extractor returns: a title candidate and raw text.

    Both are cleaned up by the dispatcher (``normalise_text``, title
    fallbacks), so extractors stay small and uniform. An empty title means
    "no title in the file".
    """

    title: str
    text: str


def normalise_text(text: str) -> str:
    """Normalise newlines, drop control characters and squeeze blank lines.

    ``\\r\\n`` and lone ``\\r`` become ``\\n``, form feeds become line breaks,
    other C0 controls and DEL are removed, trailing whitespace is stripped from
    every line and runs of blank lines collapse to a single blank line. Linear
    time: a multi-megabyte single line is fine.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_NORMALISE_TABLE)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _BLANK_RUN_RE.sub("\n\n", text)
    # A leading BOM survives decoding only when it was doubled; it is noise.
    return text.lstrip("\ufeff").strip("\n")


def basename(filename: str) -> str:
    """Return the last path component, accepting both / and \\ separators."""
    # Browsers on Windows have been known to send the full client path.
    return re.split(r"[\\/]", filename)[-1].strip()


def split_extension(name: str) -> tuple[str, str]:
    """Split a file name into (stem, lower-cased extension incl. the dot)."""
    dot = name.rfind(".")
    if dot <= 0:  # "README" or ".bashrc": no extension
        return name, ""
    return name[:dot], name[dot:].lower()


def clean_title(title: str) -> str:
    """Collapse whitespace and cap the length of a title candidate."""
    return " ".join(title.split())[:TITLE_MAX_CHARS].strip()


def first_line_title(text: str) -> str:
    """Return the first non-empty line of normalised text as a title, else ""."""
    # Bounded scan: a 5 MB single line only costs one slice of it.
    for line in text.split("\n", 50):
        cleaned = clean_title(line[: TITLE_MAX_CHARS * 4])
        if cleaned:
            return cleaned
    return ""


def format_mb(size: int, *, round_up: bool = False) -> str:
    """Format a byte count as megabytes with one decimal."""
    value = size / (1024 * 1024)
    if round_up:
        # Never print "10.0 MB exceeds the 10.0 MB limit" for 10 MB + 1 byte.
        value = math.ceil(value * 10) / 10
    return f"{value:.1f}"


def short_reason(exc: BaseException) -> str:
    """Return a one-line, length-capped description of an exception."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = message or type(exc).__name__
    if len(reason) > ERROR_REASON_MAX_CHARS:
        reason = reason[: ERROR_REASON_MAX_CHARS - 1] + "…"
    return reason


# --------------------------------------------------------------------------
# Zip-based formats (DOCX, HWPX)


def zip_member_names(data: bytes) -> frozenset[str] | None:
    """Return the member names of a zip upload, or None if it is not a zip.

    Only the central directory is read, so this is cheap enough to call from
    every zip-based format's sniffer.

    Raises:
        CorruptArchiveError: the data starts like a zip but cannot be opened.
    """
    if not data.startswith(ZIP_MAGIC):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return frozenset(archive.namelist())
    except Exception as exc:  # zipfile raises BadZipFile, NotImplementedError, ...
        raise CorruptArchiveError(short_reason(exc)) from exc


def check_zip_bomb(data: bytes, *, label: str) -> None:
    """Reject an archive that would expand to an unreasonable size.

    Call it before handing a zip-based upload to its parser. ``label`` names
    the format in the corrupt-archive message ("DOCX", "HWPX").
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except Exception as exc:  # zipfile raises BadZipFile, NotImplementedError, ...
        raise ExtractionError(f"corrupt or unreadable {label}: {short_reason(exc)}") from exc
    # Declared sizes can be trusted as an upper bound: zipfile stops reading a
    # member at its declared size and then fails the CRC check.
    uncompressed = sum(info.file_size for info in infos)
    compressed = sum(info.compress_size for info in infos)
    ratio = uncompressed / max(compressed, 1)
    # Read through the module so that monkeypatched limits take effect.
    too_big = uncompressed > limits.MAX_ZIP_UNCOMPRESSED_BYTES
    too_dense = (
        uncompressed >= limits.ZIP_RATIO_MIN_BYTES and ratio > limits.MAX_ZIP_COMPRESSION_RATIO
    )
    if too_big or too_dense:
        logger.warning(
            "Rejected %s: %d bytes uncompressed from %d (ratio %.0f)",
            label,
            uncompressed,
            compressed,
            ratio,
        )
        raise ExtractionError("archive too large when uncompressed (possible zip bomb)")
