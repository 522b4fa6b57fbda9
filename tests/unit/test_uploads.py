"""Checking uploaded materials: sniffing real minimal files of each type, refusals, names."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib

import pytest

from wangban.settings import Settings
from wangban.uploads import (
    MEDIA_JPEG,
    MEDIA_OFD,
    MEDIA_PDF,
    MEDIA_PNG,
    UploadRejected,
    check_upload,
    safe_filename,
    sniff_media_type,
)

ALLOWED = Settings().upload_allowed_types
MAX = 20 * 1024 * 1024


def make_pdf() -> bytes:
    """A complete one-page PDF with a correct cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def make_png() -> bytes:
    """A real 1×1 white greyscale PNG: signature, IHDR, IDAT, IEND with CRCs."""
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff")  # filter byte 0, one white pixel
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def make_jpeg() -> bytes:
    """SOI, a JFIF APP0 segment, EOI: the start every camera and scanner JPEG has."""
    jfif = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", len(jfif) + 2) + jfif + b"\xff\xd9"


OFD_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.0" DocType="OFD">'
    "<ofd:DocBody><ofd:DocInfo><ofd:DocID>0C1D4F7159954EEEDE517F7285E84DC4</ofd:DocID>"
    "</ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"
)


def make_zip(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as package:
        for name, text in entries.items():
            package.writestr(name, text)
    return buffer.getvalue()


def make_ofd() -> bytes:
    return make_zip(
        {
            "OFD.xml": OFD_XML,
            "Doc_0/Document.xml": '<ofd:Document xmlns:ofd="http://www.ofdspec.org/2016"/>',
        }
    )


# --- sniffing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (make_pdf(), MEDIA_PDF),
        (make_png(), MEDIA_PNG),
        (make_jpeg(), MEDIA_JPEG),
        (make_ofd(), MEDIA_OFD),
    ],
    ids=["pdf", "png", "jpeg", "ofd"],
)
def test_sniffs_each_allowed_type(data: bytes, expected: str) -> None:
    assert sniff_media_type(data) == expected
    assert expected in ALLOWED


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 48,  # Windows EXE
        make_zip({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>"}),  # a .docx
        make_zip({"Doc_0/OFD.xml": OFD_XML}),  # OFD.xml must be at the root
        make_zip({"ofd.xml": OFD_XML}),  # and spelled as the standard spells it
        b"PK\x03\x04" + b"\x00" * 60,  # a ZIP header with no archive behind it
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 8,  # PNG signature without IHDR
        b"%PD",  # truncated signatures
        b"\xff\xd8",
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        b"",
    ],
    ids=[
        "html",
        "exe",
        "docx",
        "ofd-xml-nested",
        "ofd-xml-lowercase",
        "broken-zip",
        "png-no-ihdr",
        "pdf-short",
        "jpeg-short",
        "gif",
        "empty",
    ],
)
def test_other_content_is_not_recognised(data: bytes) -> None:
    assert sniff_media_type(data) is None


def test_ofd_sniffing_reads_the_directory_only() -> None:
    # A 200 MB run of zeros compresses to about 200 KB: a sniffer that decompressed entries
    # would spend seconds and memory here; reading the central directory costs nothing.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("OFD.xml", OFD_XML)
        with package.open("Doc_0/bomb.bin", "w") as entry:
            chunk = b"\x00" * (1024 * 1024)
            for _ in range(200):
                entry.write(chunk)
    data = buffer.getvalue()
    assert len(data) < 1024 * 1024
    assert sniff_media_type(data) == MEDIA_OFD


# --- accepting and refusing --------------------------------------------------------------


def test_accepts_and_fingerprints() -> None:
    data = make_pdf()
    checked = check_upload(
        data=data,
        declared_type="application/pdf",
        filename="营业执照.pdf",
        max_bytes=MAX,
        allowed_types=ALLOWED,
    )
    assert checked.sha256 == hashlib.sha256(data).hexdigest()
    assert checked.size == len(data)
    assert checked.media_type == MEDIA_PDF
    assert checked.filename == "营业执照.pdf"


def test_content_decides_not_the_declared_type_or_name() -> None:
    # A phone photo renamed to .pdf and sent as application/pdf is a JPEG, and is accepted as
    # one, with a name that matches.
    checked = check_upload(
        data=make_jpeg(),
        declared_type="application/pdf",
        filename="身份证正面.pdf",
        max_bytes=MAX,
        allowed_types=ALLOWED,
    )
    assert checked.media_type == MEDIA_JPEG
    assert checked.filename == "身份证正面.jpg"
    # WeChat's file picker often sends octet-stream; the content still decides.
    checked = check_upload(
        data=make_ofd(),
        declared_type="application/octet-stream",
        filename="电子营业执照",
        max_bytes=MAX,
        allowed_types=ALLOWED,
    )
    assert (checked.media_type, checked.filename) == (MEDIA_OFD, "电子营业执照.ofd")


@pytest.mark.parametrize(
    ("data", "declared", "name"),
    [
        (b"<html><body>hi</body></html>", "application/pdf", "申请表.pdf"),
        (b"MZ\x90\x00" + b"\x00" * 60, "image/png", "photo.png"),
        (make_zip({"word/document.xml": "<w/>"}), "application/ofd", "证照.ofd"),
    ],
    ids=["html-as-pdf", "exe-as-png", "zip-as-ofd"],
)
def test_refuses_content_that_is_not_an_allowed_type(data: bytes, declared: str, name: str) -> None:
    with pytest.raises(UploadRejected) as caught:
        check_upload(
            data=data, declared_type=declared, filename=name, max_bytes=MAX, allowed_types=ALLOWED
        )
    assert str(caught.value) == "文件类型不支持，仅支持 PDF、JPG、PNG、OFD"
    assert caught.value.reason == "type_not_allowed"
    assert isinstance(caught.value, ValueError)


def test_refuses_a_known_type_that_is_not_allowed_here() -> None:
    with pytest.raises(UploadRejected) as caught:
        check_upload(
            data=make_png(),
            declared_type="image/png",
            filename="a.png",
            max_bytes=MAX,
            allowed_types=["application/pdf", "application/ofd"],
        )
    assert str(caught.value) == "文件类型不支持，仅支持 PDF、OFD"


def test_refuses_empty_file() -> None:
    with pytest.raises(UploadRejected) as caught:
        check_upload(
            data=b"", declared_type=None, filename="a.pdf", max_bytes=MAX, allowed_types=ALLOWED
        )
    assert caught.value.reason == "empty"
    assert "文件为空" in str(caught.value)


def test_size_limit_is_inclusive_and_named_in_the_message() -> None:
    pdf = make_pdf()
    at_limit = pdf + b"\n" * (MAX - len(pdf))
    assert (
        check_upload(
            data=at_limit, declared_type=None, filename=None, max_bytes=MAX, allowed_types=ALLOWED
        ).size
        == MAX
    )
    with pytest.raises(UploadRejected) as caught:
        check_upload(
            data=at_limit + b"\n",
            declared_type=None,
            filename=None,
            max_bytes=MAX,
            allowed_types=ALLOWED,
        )
    assert caught.value.reason == "too_large"
    assert str(caught.value).startswith("文件超过 20 MB")


@pytest.mark.parametrize(
    ("limit", "shown"),
    [(10 * 1024 * 1024, "10 MB"), (1536 * 1024, "1.5 MB"), (500 * 1024, "500 KB")],
)
def test_size_message_uses_the_configured_limit(limit: int, shown: str) -> None:
    with pytest.raises(UploadRejected) as caught:
        check_upload(
            data=make_pdf() + b"\n" * limit,
            declared_type=None,
            filename=None,
            max_bytes=limit,
            allowed_types=ALLOWED,
        )
    assert str(caught.value).startswith(f"文件超过 {shown}")


def test_the_size_is_checked_before_the_content() -> None:
    # An oversized file is refused for its size even when it is not an allowed type: the
    # applicant learns the rule that applies first, and nothing large is parsed.
    with pytest.raises(UploadRejected) as caught:
        check_upload(
            data=b"MZ" + b"\x00" * 2048,
            declared_type=None,
            filename=None,
            max_bytes=1024,
            allowed_types=ALLOWED,
        )
    assert caught.value.reason == "too_large"


# --- display names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "media_type", "shown"),
    [
        ("C:\\fakepath\\户口本.pdf", MEDIA_PDF, "户口本.pdf"),
        ("../../etc/passwd", MEDIA_PDF, "passwd.pdf"),
        ("a\x00b\r\n\tc.pdf", MEDIA_PDF, "abc.pdf"),
        ("invoice\u202efdp.exe", MEDIA_PDF, "invoicefdp.exe.pdf"),  # right-to-left override
        (".hidden.png", MEDIA_PNG, "hidden.png"),
        ("  报告.v2  ", MEDIA_PDF, "报告.v2.pdf"),
        ("scan.JPEG", MEDIA_JPEG, "scan.JPEG"),
        ("scan.png", MEDIA_JPEG, "scan.jpg"),
        (None, MEDIA_PNG, "未命名.png"),
        ("...", MEDIA_OFD, "未命名.ofd"),
        ("/", None, "未命名"),
        ("notes.txt", None, "notes.txt"),
    ],
)
def test_safe_filename(sent: str | None, media_type: str | None, shown: str) -> None:
    assert safe_filename(sent, media_type=media_type) == shown


def test_long_names_keep_their_extension() -> None:
    name = safe_filename("长" * 300 + ".pdf", media_type=MEDIA_PDF)
    assert len(name) == 100
    assert name == "长" * 96 + ".pdf"
    assert len(safe_filename("x" * 500, media_type=None)) == 100


def test_checked_upload_carries_the_safe_name() -> None:
    checked = check_upload(
        data=make_png(),
        declared_type="image/png",
        filename="D:\\材料\\现场照片\u0007.png",
        max_bytes=MAX,
        allowed_types=ALLOWED,
    )
    assert checked.filename == "现场照片.png"
