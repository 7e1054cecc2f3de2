"""HWPX (OWPML) documents: the zip package Hangul 2010 and later write.

``mimetype`` (stored, first), ``version.xml``, ``META-INF/container.xml`` and
``manifest.xml``, ``Contents/content.hpf``, ``header.xml`` and
``section0.xml``, ``settings.xml`` and ``Preview/PrvText.txt``. The encrypted
variant lists ODF ``encryption-data`` in the manifest, as Hancom's
password-protected files do, and replaces the parts with ciphertext.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

from tests.documents.hwp_samples.hwp import Rows, noise

__all__ = ["make_hwpx", "rezip"]

_NS = (
    'xmlns:ha="http://www.hancom.co.kr/hwpml/2011/app" '
    'xmlns:hp="http://www.hancom.co.kr/hwpml/2011/paragraph" '
    'xmlns:hs="http://www.hancom.co.kr/hwpml/2011/section" '
    'xmlns:hc="http://www.hancom.co.kr/hwpml/2011/core" '
    'xmlns:hh="http://www.hancom.co.kr/hwpml/2011/head" '
    'xmlns:hpf="http://www.hancom.co.kr/schema/2011/hpf" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:opf="http://www.idpf.org/2007/opf/"'
)
_XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>'
_ODF_MANIFEST_NS = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"


def _hwpx_run(text: str) -> str:
    """One hp:run; tabs and line breaks become hp:tab / hp:lineBreak inside hp:t."""
    parts: list[str] = []
    for index, line in enumerate(text.replace("\r\n", "\n").split("\n")):
        if index:
            parts.append("<hp:lineBreak/>")
        for tab_index, chunk in enumerate(line.split("\t")):
            if tab_index:
                parts.append('<hp:tab width="4000" leader="0" type="1"/>')
            parts.append(escape(chunk))
    return f'<hp:run charPrIDRef="0"><hp:t>{"".join(parts)}</hp:t></hp:run>'


def _hwpx_paragraph(text: str, pid: int, *, extra: str = "") -> str:
    return (
        f'<hp:p id="{pid}" paraPrIDRef="0" styleIDRef="0" pageBreak="0" columnBreak="0" '
        f'merged="0">{extra}{_hwpx_run(text)}'
        '<hp:linesegarray><hp:lineseg textpos="0" vertpos="0" vertsize="1000" '
        'textheight="1000" baseline="850" spacing="600" horzpos="0" horzsize="42520" '
        'flags="393216"/></hp:linesegarray></hp:p>'
    )


def _hwpx_table(rows: Rows, pid: int) -> str:
    n_rows = len(rows)
    n_cols = max(len(row) for row in rows)
    width = 42520 // n_cols
    cells_xml: list[str] = []
    for r, row in enumerate(rows):
        cells = []
        for c in range(n_cols):
            text = row[c] if c < len(row) else ""
            paras = "".join(
                _hwpx_paragraph(line, pid * 1000 + r * 100 + c * 10 + i)
                for i, line in enumerate(text.split("\n"))
            )
            cells.append(
                '<hp:tc name="" header="0" hasMargin="0" protect="0" editable="0" dirty="0" '
                'borderFillIDRef="1"><hp:subList id="" textDirection="HORIZONTAL" '
                'lineWrap="BREAK" vertAlign="CENTER" linkListIDRef="0" linkListNextIDRef="0" '
                f'textWidth="0" textHeight="0" hasTextRef="0" hasNumRef="0">{paras}</hp:subList>'
                f'<hp:cellAddr colAddr="{c}" rowAddr="{r}"/><hp:cellSpan colSpan="1" rowSpan="1"/>'
                f'<hp:cellSz width="{width}" height="1500"/>'
                '<hp:cellMargin left="510" right="510" top="141" bottom="141"/></hp:tc>'
            )
        cells_xml.append(f"<hp:tr>{''.join(cells)}</hp:tr>")
    table = (
        f'<hp:tbl id="{pid}" zOrder="0" numberingType="TABLE" textWrap="TOP_AND_BOTTOM" '
        'textFlow="BOTH_SIDES" lock="0" dropcapstyle="None" pageBreak="CELL" repeatHeader="1" '
        f'rowCnt="{n_rows}" colCnt="{n_cols}" cellSpacing="0" borderFillIDRef="1" noAdjust="0">'
        f'<hp:sz width="{width * n_cols}" widthRelTo="ABSOLUTE" height="{1500 * n_rows}" '
        'heightRelTo="ABSOLUTE" protect="0"/><hp:pos treatAsChar="1" affectLSpacing="0" '
        'flowWithText="1" allowOverlap="0" holdAnchorAndSO="0" vertRelTo="PARA" '
        'horzRelTo="COLUMN" vertAlign="TOP" horzAlign="LEFT" vertOffset="0" horzOffset="0"/>'
        '<hp:outMargin left="283" right="283" top="283" bottom="283"/>'
        '<hp:inMargin left="510" right="510" top="141" bottom="141"/>'
        f"{''.join(cells_xml)}</hp:tbl>"
    )
    return (
        f'<hp:p id="{pid}" paraPrIDRef="0" styleIDRef="0" pageBreak="0" columnBreak="0" '
        f'merged="0"><hp:run charPrIDRef="0">{table}<hp:t/></hp:run></hp:p>'
    )


_SEC_PR = (
    '<hp:run charPrIDRef="0"><hp:secPr id="" textDirection="HORIZONTAL" spaceColumns="1134" '
    'tabStop="8000" tabStopVal="4000" tabStopUnit="HWPUNIT" outlineShapeIDRef="1" '
    'memoShapeIDRef="0" textVerticalWidthHead="0" masterPageCnt="0">'
    '<hp:pagePr landscape="WIDELY" width="59528" height="84188" gutterType="LEFT_ONLY">'
    '<hp:margin header="4252" footer="4252" gutter="0" left="8504" right="8504" top="5668" '
    'bottom="4252"/></hp:pagePr></hp:secPr><hp:ctrl><hp:colPr id="" type="NEWSPAPER" '
    'layout="LEFT" colCount="1" sameSz="1" sameGap="0"/></hp:ctrl></hp:run>'
)

_LANGS = ("hangul", "latin", "hanja", "japanese", "other", "symbol", "user")


def _per_lang(tag: str, value: str) -> str:
    return f"<hh:{tag} " + " ".join(f'{lang}="{value}"' for lang in _LANGS) + "/>"


_BORDER_FILL = (
    '<hh:borderFill id="1" threeD="0" shadow="0" centerLine="NONE" breakCellSeparateLine="0">'
    '<hh:slash type="NONE" Crooked="0" isCounter="0"/>'
    '<hh:backSlash type="NONE" Crooked="0" isCounter="0"/>'
    + "".join(
        f'<hh:{side}Border type="NONE" width="0.1 mm" color="#000000"/>'
        for side in ("left", "right", "top", "bottom")
    )
    + '<hh:diagonal type="SOLID" width="0.1 mm" color="#000000"/></hh:borderFill>'
)

_FONT_FACES = "".join(
    f'<hh:fontface lang="{lang.upper()}" fontCnt="1"><hh:font id="0" face="함초롬바탕" '
    'type="TTF" isEmbedded="0"/></hh:fontface>'
    for lang in _LANGS
)

_CHAR_PR = (
    '<hh:charPr id="0" height="1000" textColor="#000000" shadeColor="none" useFontSpace="0" '
    'useKerning="0" symMark="NONE" borderFillIDRef="1">'
    + _per_lang("fontRef", "0")
    + _per_lang("ratio", "100")
    + _per_lang("spacing", "0")
    + _per_lang("relSz", "100")
    + _per_lang("offset", "0")
    + '<hh:underline type="NONE" shape="SOLID" color="#000000"/>'
    '<hh:strikeout shape="NONE" color="#000000"/><hh:outline type="NONE"/>'
    '<hh:shadow type="NONE" color="#B2B2B2" offsetX="10" offsetY="10"/></hh:charPr>'
)

_PARA_PR = (
    '<hh:paraPr id="0" tabPrIDRef="0" condense="0" fontLineHeight="0" snapToGrid="1" '
    'suppressLineNumbers="0" checked="0"><hh:align horizontal="JUSTIFY" vertical="BASELINE"/>'
    '<hh:heading type="NONE" idRef="0" level="0"/><hh:breakSetting breakLatinWord="KEEP_WORD" '
    'breakNonLatinWord="KEEP_WORD" widowOrphan="0" keepWithNext="0" keepLines="0" '
    'pageBreakBefore="0" lineWrap="BREAK"/><hh:autoSpacing eAsianEng="0" eAsianNum="0"/>'
    '<hh:margin><hc:intent value="0" unit="HWPUNIT"/><hc:left value="0" unit="HWPUNIT"/>'
    '<hc:right value="0" unit="HWPUNIT"/><hc:prev value="0" unit="HWPUNIT"/>'
    '<hc:next value="0" unit="HWPUNIT"/></hh:margin>'
    '<hh:lineSpacing type="PERCENT" value="160" unit="HWPUNIT"/>'
    '<hh:border borderFillIDRef="1" offsetLeft="0" offsetRight="0" offsetTop="0" '
    'offsetBottom="0" connect="0" ignoreMargin="0"/></hh:paraPr>'
)

_HEADER_XML = (
    f'{_XML_DECL}<hh:head {_NS} version="1.4" secCnt="1">'
    '<hh:beginNum page="1" footnote="1" endnote="1" pic="1" tbl="1" equation="1"/>'
    f'<hh:refList><hh:fontfaces itemCnt="{len(_LANGS)}">{_FONT_FACES}</hh:fontfaces>'
    f'<hh:borderFills itemCnt="1">{_BORDER_FILL}</hh:borderFills>'
    f'<hh:charProperties itemCnt="1">{_CHAR_PR}</hh:charProperties>'
    '<hh:tabProperties itemCnt="1"><hh:tabPr id="0" autoTabLeft="0" autoTabRight="0"/>'
    "</hh:tabProperties>"
    f'<hh:paraProperties itemCnt="1">{_PARA_PR}</hh:paraProperties>'
    '<hh:styles itemCnt="1"><hh:style id="0" type="PARA" name="바탕글" engName="Normal" '
    'paraPrIDRef="0" charPrIDRef="0" nextStyleIDRef="0" langID="1042" lockForm="0"/>'
    "</hh:styles></hh:refList></hh:head>"
)


def _content_hpf(title: str) -> str:
    return (
        f'{_XML_DECL}<opf:package {_NS} version="" unique-identifier="" id="">'
        f"<opf:metadata><opf:title>{escape(title)}</opf:title><opf:language>ko</opf:language>"
        '<opf:meta name="creator" content="text">hwp_samples</opf:meta></opf:metadata>'
        '<opf:manifest><opf:item id="header" href="Contents/header.xml" '
        'media-type="application/xml"/><opf:item id="section0" href="Contents/section0.xml" '
        'media-type="application/xml"/><opf:item id="settings" href="settings.xml" '
        'media-type="application/xml"/></opf:manifest><opf:spine><opf:itemref idref="header"/>'
        '<opf:itemref idref="section0"/></opf:spine></opf:package>'
    )


def _encrypted_manifest(parts: dict[str, bytes]) -> str:
    entries = []
    for name, plain in parts.items():
        digest = hashlib.sha256(b"checksum" + plain).digest()
        entries.append(
            f'<odf:file-entry odf:full-path={quoteattr(name)} odf:media-type="application/xml" '
            f'odf:size="{len(plain)}"><odf:encryption-data odf:checksum-type='
            f'"{_ODF_MANIFEST_NS}#sha256-1k" odf:checksum="{_b64(digest)}">'
            '<odf:algorithm odf:algorithm-name="http://www.w3.org/2001/04/xmlenc#aes256-cbc" '
            f'odf:initialisation-vector="{_b64(digest[:16])}"/>'
            f'<odf:key-derivation odf:key-derivation-name="{_ODF_MANIFEST_NS}#pbkdf2" '
            f'odf:key-size="32" odf:iteration-count="1024" odf:salt="{_b64(digest[16:])}"/>'
            "<odf:start-key-generation odf:start-key-generation-name="
            '"http://www.w3.org/2000/09/xmldsig#sha256" odf:key-size="32"/>'
            "</odf:encryption-data></odf:file-entry>"
        )
    return (
        f'{_XML_DECL}<odf:manifest xmlns:odf="{_ODF_MANIFEST_NS}">{"".join(entries)}</odf:manifest>'
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def make_hwpx(
    paragraphs: Sequence[str],
    *,
    title: str = "",
    encrypted: bool = False,
    table: Rows | None = None,
) -> bytes:
    """Return an HWPX document whose first section is ``paragraphs`` (then ``table``).

    ``encrypted`` writes the ODF manifest ``encryption-data`` entries Hancom uses for
    password-protected HWPX files and replaces the section and header parts with
    ciphertext-like bytes.
    """
    body = []
    for index, text in enumerate(list(paragraphs) or [""]):
        extra = _SEC_PR if index == 0 else ""
        body.append(_hwpx_paragraph(text, index + 1, extra=extra))
    if table:
        body.append(_hwpx_table(table, len(body) + 1))
    section = f"{_XML_DECL}<hs:sec {_NS}>{''.join(body)}</hs:sec>"
    parts = {
        "Contents/header.xml": _HEADER_XML.encode("utf-8"),
        "Contents/section0.xml": section.encode("utf-8"),
    }
    manifest = f'{_XML_DECL}<odf:manifest xmlns:odf="{_ODF_MANIFEST_NS}"/>'
    if encrypted:
        manifest = _encrypted_manifest(parts)
        parts = {
            name: noise(name.encode() + data, -(-len(data) // 16) * 16)
            for name, data in parts.items()
        }

    version = (
        f'{_XML_DECL}<hv:HCFVersion xmlns:hv="http://www.hancom.co.kr/hwpml/2011/version" '
        'tagetApplication="WORDPROCESSOR" major="5" minor="1" micro="1" buildNumber="0" os="1" '
        'xmlVersion="1.5" application="hwp_samples" appVersion="1, 0, 0, 0"/>'
    )
    has_preview = not encrypted
    container = (
        f'{_XML_DECL}<ocf:container xmlns:ocf="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:hpf="http://www.hancom.co.kr/schema/2011/hpf"><ocf:rootfiles>'
        '<ocf:rootfile full-path="Contents/content.hpf" '
        'media-type="application/hwpml-package+xml"/>'
        + (
            '<ocf:rootfile full-path="Preview/PrvText.txt" media-type="text/plain"/>'
            if has_preview
            else ""
        )
        + "</ocf:rootfiles></ocf:container>"
    )
    settings = (
        f'{_XML_DECL}<ha:HWPApplicationSetting xmlns:ha="http://www.hancom.co.kr/hwpml/2011/app">'
        '<ha:CaretPosition listIDRef="0" paraIDRef="0" pos="0"/></ha:HWPApplicationSetting>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/hwp+zip", zipfile.ZIP_STORED)
        archive.writestr("version.xml", version, zipfile.ZIP_STORED)
        for name, data in parts.items():
            archive.writestr(name, data, zipfile.ZIP_DEFLATED)
        if has_preview:
            archive.writestr(
                "Preview/PrvText.txt", "\r\n".join(paragraphs)[:1024], zipfile.ZIP_DEFLATED
            )
        archive.writestr("settings.xml", settings, zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/container.xml", container, zipfile.ZIP_DEFLATED)
        archive.writestr("Contents/content.hpf", _content_hpf(title), zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def rezip(data: bytes, replace: Mapping[str, bytes], *, extra: int = 0) -> bytes:
    """Rewrite a zip with some members replaced and ``extra`` tiny members added."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info, replace.get(info.filename, source.read(info.filename)))
        for index in range(extra):
            archive.writestr(f"BinData/extra{index}.bin", b"x")
    return buffer.getvalue()
