"""Checking an applicant's uploaded material before it is stored.

The content decides what a file is. The browser's Content-Type and the file's name are
whatever the phone or the applicant made of them (a photo renamed ``.pdf``, a
``application/octet-stream`` from a WeChat file picker), so they are ignored: a file is
accepted when its bytes are one of the allowed types, and it is then stored, served and
labelled as that type. The messages are the ones the applicant reads, so they are Chinese.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "MEDIA_JPEG",
    "MEDIA_OFD",
    "MEDIA_PDF",
    "MEDIA_PNG",
    "CheckedUpload",
    "UploadRejected",
    "check_upload",
    "safe_filename",
    "sniff_media_type",
]

MEDIA_PDF: Final = "application/pdf"
MEDIA_JPEG: Final = "image/jpeg"
MEDIA_PNG: Final = "image/png"
MEDIA_OFD: Final = "application/ofd"

# Shown to applicants in the order of the allowed types.
_LABELS: Final = {MEDIA_PDF: "PDF", MEDIA_JPEG: "JPG", MEDIA_PNG: "PNG", MEDIA_OFD: "OFD"}
# The first extension is the one given to a file whose name does not match its content.
_EXTENSIONS: Final = {
    MEDIA_PDF: (".pdf",),
    MEDIA_JPEG: (".jpg", ".jpeg"),
    MEDIA_PNG: (".png",),
    MEDIA_OFD: (".ofd",),
}
_KNOWN_EXTENSIONS: Final = frozenset(e for exts in _EXTENSIONS.values() for e in exts)

MAX_FILENAME_CHARS: Final = 100
DEFAULT_FILENAME: Final = "未命名"

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_ZIP_LOCAL_HEADER: Final = b"PK\x03\x04"

RejectReason = Literal["empty", "too_large", "type_not_allowed"]


class UploadRejected(ValueError):
    """The upload is refused; ``str(exc)`` is the message for the applicant, ``reason`` a
    stable code for the API and metrics."""

    def __init__(self, message: str, *, reason: RejectReason) -> None:
        super().__init__(message)
        self.reason: RejectReason = reason


@dataclass(frozen=True, slots=True)
class CheckedUpload:
    sha256: str
    """Hex SHA-256 of the content: the material's fingerprint for dedup and audit."""
    size: int
    media_type: str
    """The type sniffed from the content, never the declared one."""
    filename: str
    """A safe display name: base name only, no control characters, at most 100 characters,
    with an extension that matches ``media_type``."""


def sniff_media_type(data: bytes) -> str | None:
    """The media type of ``data`` judged by its leading bytes, or None if not one we know.

    PDF, JPEG and PNG by their signatures. OFD (GB/T 33190) is a ZIP package whose root holds
    ``OFD.xml``; only the ZIP's central directory is read, nothing is decompressed, so a
    "zip bomb" costs nothing here.
    """
    if data.startswith(b"%PDF-"):
        return MEDIA_PDF
    if data.startswith(b"\xff\xd8\xff"):
        return MEDIA_JPEG
    # The PNG specification requires IHDR as the first chunk (length at 8, type at 12).
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR":
        return MEDIA_PNG
    if data.startswith(_ZIP_LOCAL_HEADER) and _is_ofd_package(data):
        return MEDIA_OFD
    return None


def _is_ofd_package(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            return any(info.filename == "OFD.xml" for info in package.infolist())
    # A damaged or hostile archive: whatever zipfile raises while reading the directory
    # (RuntimeError covers NotImplementedError, ValueError covers UnicodeDecodeError).
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, RuntimeError):
        return False


def check_upload(
    *,
    data: bytes,
    declared_type: str | None,
    filename: str | None,
    max_bytes: int,
    allowed_types: Sequence[str],
) -> CheckedUpload:
    """Accept or refuse one uploaded material.

    ``declared_type`` (the part's Content-Type) is deliberately not used: content that is an
    allowed type is accepted whatever was declared, and content that is not is refused
    whatever was declared. Callers pass it anyway so that this rule lives here, in one place,
    and not in each route that receives a file.
    """
    del declared_type  # the content decides; see above
    size = len(data)
    if size == 0:
        raise UploadRejected("文件为空，请重新选择文件", reason="empty")
    if size > max_bytes:
        raise UploadRejected(
            f"文件超过 {_human_size(max_bytes)}，请压缩或拆分后重新上传", reason="too_large"
        )
    allowed = [t.strip().lower() for t in allowed_types]
    media_type = sniff_media_type(data)
    if media_type is None or media_type not in allowed:
        labels = "、".join(dict.fromkeys(_LABELS.get(t, t) for t in allowed))
        raise UploadRejected(f"文件类型不支持，仅支持 {labels}", reason="type_not_allowed")
    return CheckedUpload(
        sha256=hashlib.sha256(data).hexdigest(),
        size=size,
        media_type=media_type,
        filename=safe_filename(filename, media_type=media_type),
    )


def safe_filename(filename: str | None, *, media_type: str | None = None) -> str:
    """A name fit for display and for a download's Content-Disposition.

    Only the last path component is kept (browsers on Windows may send ``C:\\fakepath\\…``);
    control and format characters go (among them the right-to-left override that makes
    ``invoice<U+202E>fdp.exe`` display as ``invoiceexe.pdf``); dots and spaces at either end go.
    With ``media_type``, the extension is made to match the content: a JPEG named
    ``scan.pdf`` becomes ``scan.jpg``, so a downloaded copy opens in the right program. The
    result is at most 100 characters, the extension kept when the stem is shortened.
    """
    name = unicodedata.normalize("NFC", filename or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = name.strip().strip(".").strip()
    stem, dot, extension = name.rpartition(".")
    if dot and 1 <= len(extension) <= 10:
        suffix = f".{extension}"
    else:
        stem, suffix = name, ""
    if media_type in _EXTENSIONS:
        wanted = _EXTENSIONS[media_type]
        if suffix.lower() not in wanted:
            if suffix.lower() not in _KNOWN_EXTENSIONS:
                # An unknown ending ("报告.v2") is part of the name, not a type claim.
                stem = name
            suffix = wanted[0]
    stem = stem.strip() or DEFAULT_FILENAME
    return stem[: MAX_FILENAME_CHARS - len(suffix)].rstrip() + suffix


def _human_size(size: int) -> str:
    """20971520 → "20 MB", 1572864 → "1.5 MB", 512000 → "500 KB" (binary units, as the
    limits are configured)."""
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= factor:
            value = size / factor
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{size} 字节"
