"""What the media parts of a request cost in tokens: images (from their header's size, or their
byte count), PDFs and audio (from their size), never decoded in full. `proxy.tokens` prices the
text around them."""

from __future__ import annotations

import base64
import binascii
import math

from proxy.types import ClientAPI

ANTHROPIC = ClientAPI.ANTHROPIC

# Images. Anthropic: (w*h)/750 after fitting the long edge into 1568 px, about 1600 at most.
# OpenAI: 85 + 170 per 512 px tile after fitting 2048 px then a 768 px short side; "low" is 85.
_ANTHROPIC_MAX_EDGE = 1568
_ANTHROPIC_MAX_IMAGE = 1600
_UNKNOWN_IMAGE = (1600, 1200)
"""Assumed size of an image behind a URL or file id: large, so long contexts are not missed."""
_PIXELS_PER_BYTE = 4
"""Compressed images hold a few pixels per byte; used when the header gives no size."""
_PDF_BYTES_PER_TOKEN = 26
PDF_MIN = 2300
"""About one page: a page image plus its text."""
_AUDIO_BYTES_PER_TOKEN = 3200
_JPEG_SCAN_CHARS = 65_536
"""Base64 characters decoded to find a JPEG's frame header (past EXIF, which may be 64 KB)."""


def data_url_payload(url: object) -> str | None:
    """The base64 payload of a `data:` URL; None for remote URLs and anything else."""
    if isinstance(url, str) and url.startswith("data:"):
        head, sep, payload = url.partition(",")
        return payload if sep and head.endswith(";base64") else None
    return None


def image_tokens(data: str | None, detail: object, fmt: ClientAPI) -> int:
    if fmt is not ANTHROPIC and detail == "low":
        return 85
    size = _image_size(data) if data else None
    if size is None:
        size = _UNKNOWN_IMAGE if not data else _size_from_bytes(len(data) * 3 // 4)
    width, height = size
    if fmt is ANTHROPIC:
        scale = min(1.0, _ANTHROPIC_MAX_EDGE / max(width, height, 1))
        return min(_ANTHROPIC_MAX_IMAGE, math.ceil(width * height * scale * scale / 750))
    fit = min(1.0, 2048 / max(width, height, 1))
    scale = fit * min(1.0, 768 / max(min(width, height) * fit, 1))
    tiles = math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
    return 85 + 170 * tiles


def _size_from_bytes(size: int) -> tuple[int, int]:
    """A 4:3 image of the pixel count a compressed file of `size` bytes typically holds."""
    pixels = max(size, 1) * _PIXELS_PER_BYTE
    width = math.isqrt(pixels * 4 // 3)
    return width, max(1, pixels // max(width, 1))


def pdf_tokens(data: str) -> int:
    return max(PDF_MIN, len(data) * 3 // 4 // _PDF_BYTES_PER_TOKEN)


def audio_tokens(data: str | None) -> int:
    """Audio, by its decoded size (`data`: base64, or None when absent)."""
    return 1 + (len(data) * 3 // 4 if data else 0) // _AUDIO_BYTES_PER_TOKEN


def _b64_prefix(data: str, chars: int) -> bytes:
    head = data[:chars]
    head = head[: len(head) - len(head) % 4]
    try:
        return base64.b64decode(head)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters in the payload
        return b""


def _image_size(data: str) -> tuple[int, int] | None:
    """Width and height from a base64 PNG, GIF, WebP or JPEG header; None if not found."""
    head = _b64_prefix(data, 64)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:4] == b"GIF8" and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8X":
            return (
                1 + int.from_bytes(head[24:27], "little"),
                1 + int.from_bytes(head[27:30], "little"),
            )
        if chunk == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            return (
                int.from_bytes(head[26:28], "little") & 0x3FFF,
                int.from_bytes(head[28:30], "little") & 0x3FFF,
            )
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(_b64_prefix(data, _JPEG_SCAN_CHARS))
    return None


_JPEG_FRAMES = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)}
)


def _jpeg_size(jpeg: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(jpeg):
        if jpeg[i] != 0xFF:
            return None
        marker = jpeg[i + 1]
        if marker in _JPEG_FRAMES:
            height = int.from_bytes(jpeg[i + 5 : i + 7], "big")
            return int.from_bytes(jpeg[i + 7 : i + 9], "big"), height
        if marker == 0xFF:
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
        else:
            i += 2 + int.from_bytes(jpeg[i + 2 : i + 4], "big")
    return None
