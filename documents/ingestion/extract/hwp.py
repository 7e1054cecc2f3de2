"""HWP 5.0 uploads (Hangul's binary format): checked here, read by python-hwpx.

An HWP 5.0 file is an OLE2 compound file whose ``FileHeader`` stream starts
with "HWP Document File" and whose other streams are mostly raw deflate.
Before python-hwpx converts the file (to the OWPML model that
``hwpx.read_owpml`` reads), this module refuses what must not be imported:
password, certificate or DRM protection, distribution-only (배포용)
documents, damaged containers, and streams that would inflate past
``limits.HWP_MAX_*`` (python-hwpx's own cap is 256 MB per stream, with
none on the total). The compound file is read with python-hwpx's reader, so
the checks see exactly the streams the conversion will.

Files of HWP 3 and older are not compound files; they are recognised by their
signature and refused with a message that says so.

Specification: Hancom, "HWP 5.0 file format", revision 1.3,
https://www.hancom.com/etc/hwpDownload.do
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from typing import Final

from hwpx.hwp5.cfb import CompoundFile

from documents.ingestion.extract import limits
from documents.ingestion.extract.common import (
    OLE_MAGIC,
    ExtractionError,
    RawExtraction,
    short_reason,
)
from documents.ingestion.extract.hwpx import read_owpml

__all__ = ["HWP_EXTENSIONS", "extract_hwp", "looks_like_hwp"]

logger = logging.getLogger(__name__)

HWP_EXTENSIONS: Final = (".hwp",)

_SIGNATURE: Final = b"HWP Document File"
# HWP 3.x (and older) files are not compound files: they start "HWP
# Document File V3.00", where HWP 5.0 files start with the OLE magic.
_OLD_FORMAT_PREFIX: Final = b"HWP Document File V"
_FILE_HEADER: Final = "FileHeader"
_SECTION_RE: Final = re.compile(r"(BodyText|ViewText)/Section\d+")
# Streams Hangul never compresses; every other one may be raw deflate
# (BinData items even in an uncompressed document).
_STORED_STREAMS: Final = frozenset(
    {_FILE_HEADER, "\x05HwpSummaryInformation", "PrvText", "PrvImage"}
)

# FileHeader property bits (the "file recognition information" table).
_COMPRESSED: Final = 1 << 0
_PASSWORD: Final = 1 << 1
_DISTRIBUTION: Final = 1 << 2
_DRM: Final = 1 << 4
_CERTIFICATE_ENCRYPTED: Final = 1 << 8
_CERTIFICATE_DRM: Final = 1 << 10

_ENCRYPTED_MESSAGE: Final = "encrypted or password-protected HWP document"
_BOMB_MESSAGE: Final = "HWP document too large when uncompressed (possible decompression bomb)"


class _DamagedError(Exception):
    """The file is damaged; the message is the reason, without the prefix."""


def looks_like_hwp(data: bytes, extension: str) -> bool:
    """Return True for an HWP 5.0 compound file or an older HWP file (sniffer).

    Other compound files (.doc, .xls) are not HWP. A damaged compound file
    counts as HWP when the name says so, so the user learns it is corrupt.
    """
    if data.startswith(_OLD_FORMAT_PREFIX):
        return True
    if not data.startswith(OLE_MAGIC):
        return False
    try:
        compound = CompoundFile(data)
        header = compound.read(_FILE_HEADER) if compound.has_stream(_FILE_HEADER) else b""
    except Exception:  # python-hwpx raises Hwp5Error, struct.error, ...
        return extension in HWP_EXTENSIONS
    return header.startswith(_SIGNATURE)


def extract_hwp(data: bytes) -> RawExtraction:
    """Return (title, text) from an HWP 5.0 document, refusing protected files."""
    if data.startswith(_OLD_FORMAT_PREFIX):
        raise ExtractionError(
            "older HWP 3 format is not supported: save the document as .hwp (HWP 5) "
            "or .hwpx in Hangul"
        )
    if not data.startswith(OLE_MAGIC):
        raise ExtractionError("not a valid HWP document: expected an HWP 5.0 compound file")
    try:
        _refuse_unreadable(CompoundFile(data))
    except ExtractionError:
        raise
    except _DamagedError as exc:
        raise ExtractionError(f"corrupt or unreadable HWP: {exc}") from exc
    except Exception as exc:  # python-hwpx raises Hwp5Error, struct.error, ...
        logger.info("HWP could not be read", exc_info=True)
        raise ExtractionError(f"corrupt or unreadable HWP: {short_reason(exc)}") from exc
    return read_owpml(data, label="HWP")


def _refuse_unreadable(compound: CompoundFile) -> None:
    """Raise for a protected, damaged or oversized document."""
    header = compound.read(_FILE_HEADER) if compound.has_stream(_FILE_HEADER) else b""
    if len(header) < 40 or not header.startswith(_SIGNATURE):
        raise _DamagedError("no HWP FileHeader")
    version, flags = struct.unpack_from("<II", header, 32)
    if version >> 24 != 5:
        raise ExtractionError(f"unsupported HWP version {version >> 24}: only HWP 5 is supported")
    if flags & (_DRM | _CERTIFICATE_DRM):
        raise ExtractionError("DRM-protected HWP document")
    if flags & (_PASSWORD | _CERTIFICATE_ENCRYPTED):
        raise ExtractionError(_ENCRYPTED_MESSAGE)
    streams = compound.stream_paths()
    sections = [path for path in streams if _SECTION_RE.fullmatch(path)]
    has_body = any(path.startswith("BodyText/") for path in sections)
    # 배포용 documents keep their body only in an encrypted ViewText storage.
    if flags & _DISTRIBUTION or (sections and not has_body):
        raise ExtractionError(
            "distribution-only HWP document (배포용 문서): its text is locked for "
            "viewing and cannot be imported"
        )
    if not has_body:
        raise _DamagedError("no BodyText section")
    if len(sections) > limits.HWP_MAX_SECTIONS:
        raise ExtractionError("HWP document has too many sections")
    _check_inflated_sizes(compound, streams, compressed=bool(flags & _COMPRESSED))


def _check_inflated_sizes(compound: CompoundFile, streams: list[str], *, compressed: bool) -> None:
    """Inflate every stream python-hwpx may inflate, output discarded, under the caps.

    DocInfo and the sections must be valid deflate when the document is
    compressed; other streams may hold stored data, so their inflated size
    is counted up to where the data stops being deflate.
    """
    budget = limits.HWP_MAX_INFLATED_BYTES
    for path in streams:
        if path in _STORED_STREAMS:
            continue
        required = path == "DocInfo" or _SECTION_RE.fullmatch(path) is not None
        if required and not compressed:
            continue  # read as stored: no bigger than the upload
        limit = min(limits.HWP_MAX_STREAM_INFLATED_BYTES, budget)
        raw = compound.read(path)
        budget -= _inflated_size(raw, limit=limit, strict=path if required else None)


def _inflated_size(raw: bytes, *, limit: int, strict: str | None) -> int:
    """Return how many bytes a raw-deflate stream inflates to, at most ``limit``.

    Raises:
        ExtractionError: the stream inflates past ``limit``.
        _DamagedError: ``strict`` (the stream's name) is set and the stream
            is not complete, valid deflate.
    """
    inflater = zlib.decompressobj(-15)
    size = 0
    pending = raw
    while not inflater.eof:
        try:
            chunk = inflater.decompress(pending, limits.HWP_INFLATE_CHUNK_BYTES)
        except zlib.error as exc:
            if strict:
                raise _DamagedError(short_reason(exc)) from exc
            return size
        size += len(chunk)
        if size > limit:
            logger.warning("Rejected HWP: a stream inflates past %d bytes", limit)
            raise ExtractionError(_BOMB_MESSAGE)
        pending = inflater.unconsumed_tail
        if not chunk and not pending:
            break  # the input ran out before the end of the stream
    if strict and not inflater.eof:
        raise _DamagedError(f"{strict} is truncated")
    return size
