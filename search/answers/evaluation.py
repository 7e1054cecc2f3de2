"""Evaluating answers against gold answer strings (KorQuAD's ``answers.jsonl``).

An answer counts as right when, after KorQuAD-style normalisation (its
evaluate-v1.0.py: punctuation and spaces removed, lower-cased), it contains a
gold answer; its citations count when one of the cited passages does.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pathlib import Path

    from search.answers.selectors import Answer

_PUNCTUATION: Final = re.compile(
    r"[\s\u2018\u2019\u201c\u201d'\"`~!@#$%^&*()\-_=+\[\]{}|\\;:,.<>/?·《》「」『』〈〉]"
)


def normalise(text: str) -> str:
    """Text as KorQuAD compares answers: NFKC, lower case, no punctuation or spaces."""
    return _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text).lower())


def load_answers(path: Path) -> dict[str, list[str]]:
    """``answers.jsonl``: query id -> its gold answer strings."""
    answers: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                answers[str(row["query-id"])] = [str(a) for a in row["answers"]]
    return answers


def contains_gold(text: str, gold: list[str]) -> bool:
    normalised = normalise(text)
    return any(g and normalise(g) in normalised for g in gold)


def judge(answer: Answer, gold: list[str]) -> tuple[bool, bool]:
    """(the answer contains a gold answer, a cited passage does)."""
    cited = any(contains_gold(c.passage.text, gold) for c in answer.citations)
    return contains_gold(answer.text, gold) if answer.text else False, cited
