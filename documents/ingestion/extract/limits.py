"""Every size limit and threshold of text extraction, in one place.

Module constants rather than parameters, so tests can monkeypatch them
(``monkeypatch.setattr(limits, "MAX_ZIP_UNCOMPRESSED_BYTES", ...)``) without
widening the public signature of ``extract_text``. Code that must honour a
patched value reads it as ``limits.NAME`` at call time.
"""

from __future__ import annotations

from typing import Final

#: Default upload size limit of ``extract_text`` (callers pass the setting).
DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024

# Zip-bomb guard for every zip-based format (DOCX, HWPX).
MAX_ZIP_UNCOMPRESSED_BYTES: Final = 100 * 1024 * 1024
MAX_ZIP_COMPRESSION_RATIO: Final = 100
# Below this size a high ratio is harmless (a tiny, very repetitive document),
# so the ratio check only applies once the archive expands to at least this.
ZIP_RATIO_MIN_BYTES: Final = 1024 * 1024

TITLE_MAX_CHARS: Final = 200
ERROR_REASON_MAX_CHARS: Final = 120

# Share of control or undecodable characters above which "text" is binary.
BINARY_THRESHOLD: Final = 0.10
# Legacy Korean text: share of the non-ASCII letters that must be Hangul for
# a strict CP949 decode to be taken without asking the detector.
MOSTLY_HANGUL_SHARE: Final = 0.5
# The most "chaos" (charset-normalizer's mess ratio, 0..1) a detection may
# show and still be believed.
MAX_DETECTION_CHAOS: Final = 0.1

# Leading bytes searched for a PDF header when the name already says .pdf;
# readers tolerate some junk before "%PDF-" and so does this one.
PDF_HEADER_WINDOW: Final = 1024
# How far into a text file to look for an HTML start tag (past comments/BOM)
# and for a <meta charset> declaration.
HTML_SNIFF_WINDOW: Final = 4096
# Guard against pathological nesting of tables inside table cells.
DOCX_MAX_TABLE_DEPTH: Final = 20

# HWP 5.0 keeps its streams raw-deflated inside a compound file: the most one
# stream, and all of them together, may inflate to before the upload is
# refused as a decompression bomb, checked before python-hwpx inflates any.
HWP_MAX_STREAM_INFLATED_BYTES: Final = 64 * 1024 * 1024
HWP_MAX_INFLATED_BYTES: Final = 128 * 1024 * 1024
# Output per inflate step while measuring, so a bomb never sits in memory.
HWP_INFLATE_CHUNK_BYTES: Final = 1024 * 1024
HWP_MAX_SECTIONS: Final = 1024
# HWPX parts (python-hwpx itself refuses more than 4,096 zip entries).
HWPX_MAX_MEMBERS: Final = 4096
# Tables in table cells and text boxes, for HWP and HWPX (as for DOCX).
HWPX_MAX_NESTING_DEPTH: Final = 20
