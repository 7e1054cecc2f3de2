"""Fixtures of the answer tests: a Korean and an English policy, and a restricted one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.factories import make_document

if TYPE_CHECKING:
    from django.contrib.auth.models import Group

    from documents.models import Document

VACATION_TEXT = (
    "휴가 규정\n\n직원은 매년 15일의 연차를 받습니다. "
    "3년 이상 근속하면 연차는 최대 25일까지 늘어납니다. 휴가 신청은 인사 포털에서 합니다."
)
REMOTE_TEXT = (
    "Remote work policy. Staff may work from home two days a week. "
    "Requests for remote work are approved by the team lead. Laptops are provided by IT."
)
SECRET_TEXT = (
    "임원 보상 규정\n\n임원은 3년 이상 근속하면 연차가 최대 40일까지 늘어나며 "
    "성과급은 별도로 정합니다."
)


@pytest.fixture
def vacation(db: None) -> Document:
    return make_document("휴가 규정", VACATION_TEXT, tags=["hr"])


@pytest.fixture
def remote(db: None) -> Document:
    return make_document("Remote work policy", REMOTE_TEXT, tags=["hr"])


@pytest.fixture
def secret(hr_group: Group) -> Document:
    """Restricted to HR: a competing answer nobody else may ever read."""
    return make_document("임원 보상 규정", SECRET_TEXT, groups=[hr_group])
