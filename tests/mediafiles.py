"""Photos and documents for the tests, made here: each carries the metadata that must never leave (a camera's name,
a GPS position, XMP and IPTC text, a PDF's author), with markers that :func:`leaks` finds in any file."""

from __future__ import annotations

import io
import struct

import pikepdf
from PIL import Image

SECRETS = (b"SecretCamera", b"SecretXMP", b"SecretIPTC", b"SecretAuthor", b"SecretProducer", b"SecretPNG")
GPS_IFD = 0x8825


def leaks(data: bytes) -> list[str]:
    """The metadata a file still carries: a marker, an EXIF block, a GPS directory, XMP or IPTC."""
    found = [marker.decode() for marker in SECRETS if marker in data]
    if b"Exif\x00\x00" in data:
        found.append("EXIF")
    if b"http://ns.adobe.com/xap/1.0/" in data or b"<x:xmpmeta" in data:
        found.append("XMP")
    if b"Photoshop 3.0" in data:
        found.append("IPTC")
    if data.startswith(b"%PDF") and (b"/Author" in data or b"/Info" in data or b"/Metadata" in data):
        found.append("PDF document information")
    try:
        image = Image.open(io.BytesIO(data))
    except Exception:
        return found
    exif = image.getexif()
    if len(exif) or exif.get_ifd(GPS_IFD):
        found.append(f"EXIF tags {sorted(exif)}")
    return found


def _exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SecretCamera"  # Make
    exif[0x0112] = orientation
    exif[GPS_IFD] = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)}
    return exif


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>SecretXMP</dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta>')


def _with_iptc(jpeg: bytes) -> bytes:
    """The JPEG with an APP13 (Photoshop IRB) segment holding an IPTC by-line, as newsroom software writes it."""
    record = b"\x1c\x02\x50" + struct.pack(">H", 10) + b"SecretIPTC"  # 2:80 By-line
    block = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(record)) + record
    payload = b"Photoshop 3.0\x00" + block
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def jpeg(width: int = 1200, height: int = 800, orientation: int = 1, colour=(180, 40, 40), quality: int = 90) -> bytes:
    """A JPEG with EXIF (camera, GPS, orientation), XMP and IPTC. The left half is coloured, the right white: an
    applied orientation shows."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    image.paste(Image.new("RGB", (width // 2, height), colour), (0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", exif=_exif(orientation), xmp=XMP, quality=quality)
    return _with_iptc(out.getvalue())


def png(width: int = 640, height: int = 480) -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "SecretPNG")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    image = Image.new("RGBA", (width, height), (20, 90, 160, 200))
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info, exif=_exif())
    return out.getvalue()


def webp(width: int = 800, height: int = 600) -> bytes:
    image = Image.new("RGB", (width, height), (40, 140, 60))
    out = io.BytesIO()
    image.save(out, "WEBP", exif=_exif(), xmp=XMP)
    return out.getvalue()


def pdf(pages: int = 1, text: str = "Annual report") -> bytes:
    """A PDF with an author and producer in its document information and an XMP creator."""
    document = pikepdf.new()
    for _ in range(pages):
        document.add_blank_page(page_size=(595, 842))
    document.docinfo["/Author"] = "SecretAuthor"
    document.docinfo["/Producer"] = "SecretProducer"
    document.docinfo["/Title"] = text
    with document.open_metadata(set_pikepdf_as_editor=False) as meta:
        meta["dc:creator"] = ["SecretXMP"]
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def bomb() -> bytes:
    """A small PNG that would decode to 100 megapixels."""
    image = Image.new("1", (10_000, 10_000))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def noise_jpeg(size: int, seed: int = 1) -> bytes:
    """A JPEG of about ``size`` bytes (random pixels do not compress), for limits and benchmarks."""
    import random

    rng = random.Random(seed)
    edge = max(64, int((size / 1.1) ** 0.5))
    image = Image.frombytes("L", (edge, edge), bytes(rng.getrandbits(8) for _ in range(edge * edge)))
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=95)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that claims ``width``×``height`` pixels: what a reader sees before it decodes anything."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))
