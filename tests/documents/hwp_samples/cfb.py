"""Compound File Binary (OLE2) writer, as [MS-CFB] describes it, for HWP 5.0 samples.

Version 3 files: 512-byte sectors, 64-byte mini sectors below the 4,096-byte
cutoff, and a balanced red-black directory tree per storage.
https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-cfb/
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["build_cfb"]

_SECTOR: Final = 512
_MINI_SECTOR: Final = 64
_MINI_CUTOFF: Final = 4096
_FREESECT: Final = 0xFFFFFFFF
_ENDOFCHAIN: Final = 0xFFFFFFFE
_FATSECT: Final = 0xFFFFFFFD
_NOSTREAM: Final = 0xFFFFFFFF
_HEADER_DIFAT: Final = 109
_DIRENT: Final = struct.Struct("<64sHBBIII16sIQQIQ")


@dataclass
class _Entry:
    name: str
    kind: int  # 1 storage, 2 stream, 5 root
    data: bytes = b""
    children: list[_Entry] = field(default_factory=list)
    sid: int = 0
    left: int = _NOSTREAM
    right: int = _NOSTREAM
    child: int = _NOSTREAM
    red: bool = False
    start: int = _ENDOFCHAIN


def _cfb_key(entry: _Entry) -> tuple[int, str]:
    # [MS-CFB] 2.6.4: shorter names sort first, then case-insensitive comparison.
    return len(entry.name.encode("utf-16-le")), entry.name.upper()


def _link_tree(nodes: list[_Entry], depth: int, height: int) -> int:
    """Link sorted siblings into a balanced red-black tree; return its root sid."""
    if not nodes:
        return _NOSTREAM
    mid = len(nodes) // 2
    node = nodes[mid]
    # Every path to a leaf has the same number of black nodes when only the
    # deepest level is red.
    node.red = height > 1 and depth == height - 1
    node.left = _link_tree(nodes[:mid], depth + 1, height)
    node.right = _link_tree(nodes[mid + 1 :], depth + 1, height)
    return node.sid


def _chain(fat: list[int], start: int, count: int) -> None:
    for index in range(start, start + count - 1):
        fat[index] = index + 1
    fat[start + count - 1] = _ENDOFCHAIN


def _sectors(size: int, unit: int = _SECTOR) -> int:
    return -(-size // unit)


def _directory_tree(streams: Mapping[str, bytes]) -> list[_Entry]:
    """Return the directory entries in sid order, root first, trees linked."""
    root = _Entry("Root Entry", 5)
    order = [root]
    for path, data in streams.items():
        parent = root
        *storages, leaf = path.split("/")
        for part in storages:
            found = next((c for c in parent.children if c.name == part and c.kind == 1), None)
            if found is None:
                found = _Entry(part, 1)
                parent.children.append(found)
                order.append(found)
            parent = found
        if len(leaf) > 31:
            raise ValueError(f"CFB names are at most 31 characters: {leaf!r}")
        entry = _Entry(leaf, 2, data)
        parent.children.append(entry)
        order.append(entry)
    for sid, entry in enumerate(order):
        entry.sid = sid
    for entry in order:
        if entry.children:
            siblings = sorted(entry.children, key=_cfb_key)
            entry.child = _link_tree(siblings, 0, len(siblings).bit_length())
    return order


def build_cfb(streams: Mapping[str, bytes]) -> bytes:
    """Return a compound file holding ``streams`` ("Storage/Stream" paths).

    Up to 109 FAT sectors (about 6.8 MiB of streams): enough for test documents.
    """
    order = _directory_tree(streams)
    root = order[0]
    small = [e for e in order if e.kind == 2 and 0 < len(e.data) < _MINI_CUTOFF]
    large = [e for e in order if e.kind == 2 and len(e.data) >= _MINI_CUTOFF]
    mini_stream = bytearray()
    minifat: list[int] = []
    for entry in small:
        count = _sectors(len(entry.data), _MINI_SECTOR)
        entry.start = len(minifat)
        minifat.extend([0] * count)
        _chain(minifat, entry.start, count)
        mini_stream += entry.data.ljust(count * _MINI_SECTOR, b"\0")

    n_minifat = _sectors(len(minifat) * 4)
    n_dir = _sectors(len(order), 4)
    n_ministream = _sectors(len(mini_stream))
    payload = n_minifat + n_dir + n_ministream + sum(_sectors(len(e.data)) for e in large)
    n_fat = 1
    while n_fat * (_SECTOR // 4) < n_fat + payload:
        n_fat += 1
    if n_fat > _HEADER_DIFAT:
        raise ValueError("document too large for this minimal CFB writer")

    fat = [_FATSECT] * n_fat + [_FREESECT] * (n_fat * (_SECTOR // 4) - n_fat)
    cursor = n_fat
    first_minifat = cursor if n_minifat else _ENDOFCHAIN
    if n_minifat:
        _chain(fat, cursor, n_minifat)
        cursor += n_minifat
    first_dir = cursor
    _chain(fat, cursor, n_dir)
    cursor += n_dir
    if n_ministream:
        root.start = cursor
        _chain(fat, cursor, n_ministream)
        cursor += n_ministream
    for entry in large:
        entry.start = cursor
        _chain(fat, cursor, _sectors(len(entry.data)))
        cursor += _sectors(len(entry.data))

    difat = list(range(n_fat)) + [_FREESECT] * (_HEADER_DIFAT - n_fat)
    # Magic, CLSID, minor/major version 3, byte order, sector shifts 9 and 6,
    # reserved, directory sectors (0 in v3), FAT sectors, first directory
    # sector, transaction, mini cutoff, mini FAT, no DIFAT sectors.
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        bytes.fromhex("D0CF11E0A1B11AE1"),
        b"\0" * 16,
        0x003E,
        0x0003,
        0xFFFE,
        9,
        6,
        b"\0" * 6,
        0,
        n_fat,
        first_dir,
        0,
        _MINI_CUTOFF,
        first_minifat,
        n_minifat,
        _ENDOFCHAIN,
        0,
    ) + struct.pack(f"<{_HEADER_DIFAT}I", *difat)

    directory = bytearray()
    for entry in order:
        encoded = (entry.name + "\0").encode("utf-16-le")
        size = len(mini_stream) if entry.kind == 5 else len(entry.data)
        start = entry.start if size else _ENDOFCHAIN
        if entry.kind == 1:
            start, size = 0, 0
        color = 0 if entry.red else 1
        links = (entry.left, entry.right, entry.child)
        directory += _DIRENT.pack(
            encoded, len(encoded), entry.kind, color, *links, b"", 0, 0, 0, start, size
        )
    empty = _DIRENT.pack(b"", 0, 0, 0, _NOSTREAM, _NOSTREAM, _NOSTREAM, b"", 0, 0, 0, 0, 0)
    directory += empty * (n_dir * 4 - len(order))

    parts = [header, struct.pack(f"<{len(fat)}I", *fat)]
    if n_minifat:
        padded = minifat + [_FREESECT] * (n_minifat * (_SECTOR // 4) - len(minifat))
        parts.append(struct.pack(f"<{len(padded)}I", *padded))
    parts += [bytes(directory), bytes(mini_stream).ljust(n_ministream * _SECTOR, b"\0")]
    parts += [e.data.ljust(_sectors(len(e.data)) * _SECTOR, b"\0") for e in large]
    return b"".join(parts)
