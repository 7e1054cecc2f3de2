"""Plain text, CSV and Markdown uploads: decoded as they are, never parsed.

Markdown is indexed as written (markup characters are harmless for search)
and only looked at for a title.
"""

from __future__ import annotations

from documents.ingestion.extract.common import RawExtraction
from documents.ingestion.extract.decoding import decode_text

__all__ = ["extract_markdown", "extract_plain_text", "markdown_title"]


def extract_plain_text(data: bytes) -> RawExtraction:
    """Return the decoded text of a .txt or .csv upload (no title of its own)."""
    return RawExtraction(title="", text=decode_text(data))


def extract_markdown(data: bytes) -> RawExtraction:
    """Return the decoded Markdown source, titled by its first "# " heading."""
    text = decode_text(data)
    return RawExtraction(title=markdown_title(text), text=text)


def markdown_title(text: str) -> str:
    """Return the first ATX "# " heading outside fenced code, else ""."""
    in_fence = False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        # CommonMark allows up to three spaces before the hashes.
        if len(line) - len(line.lstrip(" ")) <= 3 and stripped.startswith("# "):
            title = stripped[2:].strip()
            # An optional closing "###" only counts after a space ("# C#" stays).
            without_closing = title.rstrip("#")
            if without_closing != title and (not without_closing or without_closing[-1] == " "):
                title = without_closing.strip()
            return title
    return ""
