"""Format sniffing: which image format some bytes hold, judged by their content (never by a file
name), and the names, MIME types and file extensions of the formats the service accepts."""

from __future__ import annotations

ACCEPTED_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp")
MIME_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
FILE_EXTENSIONS: dict[str, str] = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
DISPLAY_NAMES = "PNG, JPEG or WebP"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def detect_format(data: bytes) -> str | None:
    """The image format `data` holds, judged by its leading bytes (never by a file name):
    "png", "jpeg", "webp", "gif", "tiff", "bmp", "ico", "heic", "avif", "svg", "pdf", "psd",
    "jpeg2000", "jxl", "qoi", "iso-media"; None when it is none of these."""
    head = data[:64]
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12], "iso-media")
    if _looks_like_svg(data[:4096]):
        return "svg"
    return None


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (PNG_SIGNATURE, "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
    (b"BM", "bmp"),
    (b"\x00\x00\x01\x00", "ico"),
    (b"8BPS", "psd"),
    (b"%PDF-", "pdf"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
    (b"\xff\x4f\xff\x51", "jpeg2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),
    (b"\xff\x0a", "jxl"),
    (b"qoif", "qoi"),
)
_ISO_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"), "heic"),
    b"avif": "avif",
    b"avis": "avif",
}


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<") and b"<svg" in text
