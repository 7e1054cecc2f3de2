"""Build real HWP 5.0 and HWPX (OWPML) documents for tests, with no Hancom software.

Only the standard library is used, so the samples do not come from the
library that reads them in the product (python-hwpx). ``make_hwp`` and
``make_hwpx`` build whole documents; ``hwp_streams`` and ``build_cfb`` let a
test alter one stream of an HWP file, and ``rezip`` one part of an HWPX file.
"""

from __future__ import annotations

from tests.documents.hwp_samples.cfb import build_cfb
from tests.documents.hwp_samples.hwp import (
    COMPRESSED,
    DRM,
    Rows,
    deflate,
    hwp_streams,
    make_hwp,
)
from tests.documents.hwp_samples.hwpx import make_hwpx, rezip

__all__ = [
    "COMPRESSED",
    "DRM",
    "Rows",
    "build_cfb",
    "deflate",
    "hwp_streams",
    "make_hwp",
    "make_hwpx",
    "rezip",
]
