"""HWP 5.0 documents: tag records in raw-deflated streams of a compound file.

Laid out as the HWP 5.0 specification (Hancom, revision 1.3) describes:
``FileHeader``, ``DocInfo``, ``BodyText/Section0`` (a section and column
definition in the first paragraph, an optional table control),
``\\x05HwpSummaryInformation`` and ``PrvText``. The encrypted variant sets
FileHeader property bit 1 and writes ciphertext streams; the distribution
(배포용) variant sets bit 2 and keeps the body only in an encrypted
``ViewText`` storage, as Hangul does.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from typing import Final, TypedDict, Unpack

from tests.documents.hwp_samples.cfb import build_cfb

__all__ = [
    "COMPRESSED",
    "DISTRIBUTION",
    "DRM",
    "PASSWORD",
    "HwpOptions",
    "Rows",
    "deflate",
    "hwp_streams",
    "make_hwp",
    "noise",
]

Rows = Sequence[Sequence[str]]

_HWP_VERSION: Final = 0x05000500  # 5.0.5.0, as written by Hangul 2010 and later
_FMTID_HWP_SUMMARY: Final = bytes.fromhex("60B6A29F6110D411B4C6006097C09D8C")
# Tag ids: DocInfo records (HWPTAG_BEGIN = 16) and section records (+50).
_DOCUMENT_PROPERTIES, _ID_MAPPINGS, _FACE_NAME, _BORDER_FILL = 16, 17, 19, 20
_CHAR_SHAPE, _TAB_DEF, _PARA_SHAPE, _STYLE, _DISTRIBUTE_DOC_DATA = 21, 22, 25, 26, 28
_PARA_HEADER, _PARA_TEXT, _PARA_CHAR_SHAPE, _PARA_LINE_SEG = 66, 67, 68, 69
_CTRL_HEADER, _LIST_HEADER, _PAGE_DEF, _FOOTNOTE_SHAPE = 71, 72, 73, 74
_PAGE_BORDER_FILL, _TABLE = 75, 77
# FileHeader property bits.
COMPRESSED: Final = 1 << 0
PASSWORD: Final = 1 << 1
DISTRIBUTION: Final = 1 << 2
DRM: Final = 1 << 4


def _record(tag: int, level: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0xFFF:
        return struct.pack("<I", tag | (level << 10) | (size << 20)) + body
    return struct.pack("<II", tag | (level << 10) | (0xFFF << 20), size) + body


def _bstr(text: str) -> bytes:
    return struct.pack("<H", len(text)) + text.encode("utf-16-le")


def _chid(name: str) -> bytes:
    # A control id is a big-endian 4-character code stored as a little-endian UINT32.
    return name.encode("ascii")[::-1]


def _ctrl_char(code: int, chid: str) -> str:
    """An extended control character: 8 WCHARs, the code at both ends."""
    raw = struct.pack("<H", code) + _chid(chid) + b"\0" * 8 + struct.pack("<H", code)
    return raw.decode("utf-16-le")


_TAB_CONTROL: Final = (struct.pack("<H", 9) + b"\0" * 12 + struct.pack("<H", 9)).decode("utf-16-le")


def _paragraph(
    level: int, text: str, *, last: bool, control_mask: int = 0, controls: bytes = b""
) -> bytes:
    """PARA_HEADER, PARA_TEXT, PARA_CHAR_SHAPE, PARA_LINE_SEG, then control records.

    ``\\n`` is a line break (0x0a) and ``\\t`` an 8-WCHAR inline tab control.
    """
    units = text.replace("\r\n", "\n").replace("\t", _TAB_CONTROL) + "\r"
    encoded = units.encode("utf-16-le")
    nchars = len(encoded) // 2
    # Char count (top bit: last paragraph), control mask, para shape, style,
    # break type, char shape / range tag / line segment counts, instance id,
    # track-change merge flag.
    header = struct.pack(
        "<IIHBBHHHIH", nchars | (0x80000000 if last else 0), control_mask, 0, 0, 0, 1, 0, 1, 0, 0
    )
    out = _record(_PARA_HEADER, level, header)
    if nchars > 1 or control_mask:
        out += _record(_PARA_TEXT, level + 1, encoded)
    out += _record(_PARA_CHAR_SHAPE, level + 1, struct.pack("<II", 0, 0))
    line_seg = struct.pack("<iiiiiiiiI", 0, 0, 1000, 1000, 850, 600, 0, 42520, 0x60000)
    return out + _record(_PARA_LINE_SEG, level + 1, line_seg) + controls


def _section_controls() -> tuple[str, int, bytes]:
    """The 'secd' and 'cold' controls every section's first paragraph carries."""
    text = _ctrl_char(2, "secd") + _ctrl_char(2, "cold")
    secd = _chid("secd") + struct.pack("<IHHHIHHHHHII", 0, 1134, 0, 0, 8000, 1, 0, 0, 0, 0, 0, 0)
    page = struct.pack("<IIIIIIIIII", 59528, 84188, 8504, 8504, 5668, 4252, 4252, 4252, 0, 0)
    # flags, user symbol, prefix, suffix ")", start number, divider length, spacings, line
    note = struct.pack("<IHHHHiHHHBBI", 0, 0, 0, 0x29, 1, -1, 850, 567, 283, 1, 1, 0)
    border = struct.pack("<IHHHHH", 1, 1417, 1417, 1417, 1417, 1)
    records = _record(_CTRL_HEADER, 1, secd) + _record(_PAGE_DEF, 2, page)
    records += _record(_FOOTNOTE_SHAPE, 2, note) * 2 + _record(_PAGE_BORDER_FILL, 2, border) * 3
    cold = _chid("cold") + struct.pack("<HH", 0x1004, 0) + b"\0" * 8
    return text, 1 << 2, records + _record(_CTRL_HEADER, 1, cold)


def _table_paragraph(rows: Rows, *, last: bool) -> bytes:
    """A paragraph whose only content is a table control holding ``rows``."""
    n_rows, n_cols = len(rows), max(len(row) for row in rows)
    cell_w, cell_h = 42520 // n_cols, 1500
    common = _chid("tbl ") + struct.pack(
        "<IiiIIihhhhIiH", 0x082A2210, 0, 0, cell_w * n_cols, cell_h * n_rows, 0, 0, 0, 0, 0, 1, 0, 0
    )
    table = struct.pack("<IHHHHHHH", 0x04000006, n_rows, n_cols, 0, 510, 510, 141, 141)
    table += struct.pack(f"<{n_rows}H", *([n_cols] * n_rows))
    table += struct.pack("<HH", 1, 0)  # border fill id, valid zone count
    records = [_record(_CTRL_HEADER, 1, common), _record(_TABLE, 2, table)]
    for r, row in enumerate(rows):
        for c in range(n_cols):
            lines = (row[c] if c < len(row) else "").split("\n")
            list_header = struct.pack("<HHI", len(lines), 0, 1 << 5)  # vertical centre
            list_header += struct.pack(
                "<HHHHiiHHHHHi", c, r, 1, 1, cell_w, cell_h, 510, 510, 141, 141, 1, 0
            )
            records.append(_record(_LIST_HEADER, 2, list_header))
            records += [_paragraph(2, x, last=i == len(lines) - 1) for i, x in enumerate(lines)]
    text = _ctrl_char(11, "tbl ")
    return _paragraph(0, text, last=last, control_mask=1 << 11, controls=b"".join(records))


def _doc_info() -> bytes:
    out = _record(_DOCUMENT_PROPERTIES, 0, struct.pack("<7HIII", 1, 1, 1, 1, 1, 1, 1, 0, 0, 0))
    # bindata, 7 font languages, border fills, char shapes, tab defs, numberings,
    # bullets, para shapes, styles, memo shapes, track changes, track-change authors
    counts = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    out += _record(_ID_MAPPINGS, 0, struct.pack(f"<{len(counts)}I", *counts))
    out += _record(_FACE_NAME, 1, b"\0" + _bstr("Batang")) * 7
    # One border fill (id 1): no borders, a 0.12 mm diagonal, no fill.
    border_fill = struct.pack("<H4B4B4I", *([0] * 13)) + struct.pack("<BBIII", 0, 1, 0, 0, 0)
    out += _record(_BORDER_FILL, 1, border_fill)
    char_shape = struct.pack("<7H", *([0] * 7)) + (bytes([100] * 7) + bytes(7)) * 2
    char_shape += struct.pack("<iIbbIIIIHI", 1000, 0, 10, 10, 0, 0, 0xFFFFFFFF, 0xB2B2B2, 0, 0)
    out += _record(_CHAR_SHAPE, 1, char_shape) + _record(_TAB_DEF, 1, struct.pack("<II", 0, 0))
    para_shape = struct.pack(
        "<IiiiiiiHHHhhhhIII", 0x180, 0, 0, 0, 0, 0, 160, 0, 0, 0, 0, 0, 0, 0, 0, 0, 160
    )
    out += _record(_PARA_SHAPE, 1, para_shape)
    style = _bstr("바탕글") + _bstr("Normal") + struct.pack("<BBhHHH", 0, 0, 0x412, 0, 0, 0)
    return out + _record(_STYLE, 1, style)


def _body_text(paragraphs: Sequence[str], table: Rows | None) -> bytes:
    ctrl_text, ctrl_mask, ctrl_records = _section_controls()
    items: list[str | Rows] = [*paragraphs] or [""]
    if table:
        items.append(table)
    out: list[bytes] = []
    for index, item in enumerate(items):
        last = index == len(items) - 1
        if isinstance(item, str) and index == 0:
            text = ctrl_text + item
            out.append(
                _paragraph(0, text, last=last, control_mask=ctrl_mask, controls=ctrl_records)
            )
        elif isinstance(item, str):
            out.append(_paragraph(0, item, last=last))
        else:
            out.append(_table_paragraph(item, last=last))
    return b"".join(out)


def _summary_info(title: str) -> bytes:
    """A property set stream with the properties Hangul writes; PIDSI_TITLE is 2."""
    props: list[tuple[int, bytes]] = []
    strings = {2: title, 3: "", 4: "hwp_samples", 20: "", 5: "", 6: "", 8: "hwp_samples"}
    strings[9] = "5, 0, 5, 0 hwp_samples"
    for pid, value in strings.items():
        encoded = (value + "\0").encode("utf-16-le")
        body = struct.pack("<II", 0x1F, len(encoded) // 2) + encoded  # VT_LPWSTR
        props.append((pid, body.ljust(-(-len(body) // 4) * 4, b"\0")))
    filetime = 133801632000000000  # 2025-01-01T00:00:00Z
    props += [(pid, struct.pack("<IQ", 0x40, t)) for pid, t in ((12, filetime), (13, filetime))]
    props += [(11, struct.pack("<IQ", 0x40, 0)), (14, struct.pack("<Ii", 3, 0))]  # VT_I4
    props += [(21, struct.pack("<Ii", 3, 0))]
    # PID 0, the property-name dictionary, with the single empty entry Hangul writes.
    props.append((0, struct.pack("<III", 1, 0, 1) + b"\0" * 4))
    offset = 8 + 8 * len(props)
    index, values = b"", b""
    for pid, body in props:
        index += struct.pack("<II", pid, offset + len(values))
        values += body
    section = struct.pack("<II", 8 + len(index) + len(values), len(props)) + index + values
    head = struct.pack("<HHI16sI", 0xFFFE, 0, 0x00020206, _FMTID_HWP_SUMMARY, 1)
    return head + _FMTID_HWP_SUMMARY + struct.pack("<I", 48) + section


def noise(seed: bytes, size: int) -> bytes:
    """Deterministic bytes that look like ciphertext (and never inflate cleanly)."""
    blocks = (
        hashlib.sha256(seed + n.to_bytes(4, "little")).digest() for n in range(size // 32 + 1)
    )
    out = bytearray(b"".join(blocks)[:size])
    out[0] = 0xFF  # deflate block type 3 (reserved): guaranteed to fail to inflate
    return bytes(out)


def deflate(data: bytes) -> bytes:
    """Raw deflate (no zlib header), as HWP 5.0 compresses its streams."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def hwp_streams(
    paragraphs: Sequence[str],
    *,
    title: str = "",
    encrypted: bool = False,
    distribution: bool = False,
    table: Rows | None = None,
    compressed: bool = True,
    flags: int = 0,
) -> dict[str, bytes]:
    """Return the streams of an HWP 5.0 document, by path; see :func:`make_hwp`."""
    props = flags | (COMPRESSED if compressed else 0)
    props |= (PASSWORD if encrypted else 0) | (DISTRIBUTION if distribution else 0)
    file_header = b"HWP Document File".ljust(32, b"\0") + struct.pack(
        "<IIIIB", _HWP_VERSION, props, 0, 4 if encrypted else 0, 0
    )
    doc_info, section = _doc_info(), _body_text(paragraphs, table)
    if compressed:
        doc_info, section = deflate(doc_info), deflate(section)
    streams = {
        "FileHeader": file_header.ljust(256, b"\0"),
        "DocInfo": doc_info,
        "\x05HwpSummaryInformation": _summary_info(title),
    }
    seed = "\n".join(paragraphs).encode("utf-8")
    if encrypted:
        streams["DocInfo"] = noise(b"docinfo" + seed, len(doc_info) | 15)
        streams["BodyText/Section0"] = noise(b"section" + seed, len(section) | 15)
    elif distribution:
        # 배포용: a DISTRIBUTE_DOC_DATA record (the 256-byte key seed) precedes
        # AES-128-ECB ciphertext of the deflated section.
        seed_record = _record(_DISTRIBUTE_DOC_DATA, 0, noise(b"seed" + seed, 256))
        cipher = noise(b"view" + seed, -(-len(section) // 16) * 16)
        streams["ViewText/Section0"] = seed_record + cipher
    else:
        streams["BodyText/Section0"] = section
        # Hangul's preview: the first 1,024 characters as UTF-16.
        streams["PrvText"] = ("\r\n".join(paragraphs)[:1024] + "\0").encode("utf-16-le")
    return streams


class HwpOptions(TypedDict, total=False):
    """The options of :func:`make_hwp` and :func:`hwp_streams`."""

    title: str
    encrypted: bool
    distribution: bool
    table: Rows | None
    compressed: bool
    flags: int


def make_hwp(paragraphs: Sequence[str], **options: Unpack[HwpOptions]) -> bytes:
    """Return an HWP 5.0 document whose body is ``paragraphs``, then ``table``.

    ``title`` goes to the summary information, ``table`` is rows of cell
    texts, ``encrypted`` sets the password bit and writes ciphertext streams,
    ``distribution`` sets the 배포용 bit and keeps the body only in encrypted
    ViewText, ``compressed`` (default True) deflates the streams and ``flags``
    adds FileHeader property bits. ``\\n`` in a paragraph is a line break and
    ``\\t`` a tab.
    """
    return build_cfb(hwp_streams(paragraphs, **options))
