"""One uploaded file made safe to hand out: its type read from its content, its size and pixels checked, its
metadata stripped (EXIF, XMP, IPTC and GPS; a PDF's document information and XMP), and an image's renditions made.

Nothing here keeps anything: :mod:`distributor.media.store` keeps what :func:`clean` makes.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field

from distributor.errors import InputError

IMAGE_FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
PDF = ("application/pdf", "pdf")
MAX_PIXELS = 60_000_000
RENDITIONS = {"large": 2048, "medium": 1024, "thumb": 400}  # pixels on the long side, never more than the original


@dataclass(frozen=True)
class Cleaned:
    """What leaves distributor of one file: the original without its metadata, and an image's renditions."""

    kind: str               # "image" or "document"
    content_type: str
    extension: str
    original: bytes
    width: int | None = None
    height: int | None = None
    renditions: dict[str, tuple[bytes, int, int]] = field(default_factory=dict)  # name -> (bytes, width, height)


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size / 1000:.0f} kB"


def clean(data: bytes, where: str, max_bytes: int) -> Cleaned:
    """Check one file and make its safe copies; an :class:`InputError` naming ``where`` when it is refused."""
    if len(data) > max_bytes:
        raise InputError(f"the file has {len(data):,} bytes; a media file has at most {max_bytes:,} "
                         f"({megabytes(max_bytes)}, media.max_bytes)", where=where)
    if not data:
        raise InputError("the file is empty; expected a JPEG, PNG or WebP image or a PDF document", where=where)
    if b"%PDF-" in data[:1024]:
        return _document(data, where)
    return _image(data, where)


def _image(data: bytes, where: str) -> Cleaned:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:  # Pillow's decompression-bomb guard stays on (a warning past ~89 MP, made an error here; an error past 2×)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            source = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
            width, height = source.size
            if width * height > MAX_PIXELS:
                raise InputError(f"the image has {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
                                 f"an image has at most {MAX_PIXELS // 1_000_000} megapixels", where=where)
            source.load()
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise InputError("not a JPEG, PNG or WebP image nor a PDF document (the type is read from the content, "
                             "whatever the name says)", where=where) from None
        raise InputError(f"the image would decode to more than {MAX_PIXELS // 1_000_000} megapixels (a "
                         f"decompression bomb?); an image has at most {MAX_PIXELS // 1_000_000}", where=where) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"the image is truncated or corrupt ({exc})", where=where) from None
    image_format = source.format or "JPEG"
    content_type, extension = IMAGE_FORMATS[image_format]
    upright = ImageOps.exif_transpose(source)  # the orientation applied first: the stripped copy looks the same
    original = _encode(upright, image_format, source)
    renditions = {}
    for name, edge in RENDITIONS.items():
        copy = _for_scaling(upright)
        copy.thumbnail((edge, edge), Image.Resampling.LANCZOS)  # never enlarges
        renditions[name] = (_encode(copy, image_format), copy.width, copy.height)
    return Cleaned("image", content_type, extension, original, upright.width, upright.height, renditions)


def _for_scaling(image):
    """A copy that scales smoothly: a palette image becomes RGB(A) first."""
    if image.mode in ("P", "1", "I;16"):
        converted = image.convert("RGBA" if "transparency" in image.info or image.mode == "P" else "RGB")
        converted.info = {key: image.info[key] for key in ("icc_profile",) if key in image.info}
        return converted
    copy = image.copy()
    copy.info = dict(image.info)
    return copy


def _encode(image, image_format: str, source=None) -> bytes:
    """The image in its format, with nothing but its pixels, its colour profile and its transparency: Pillow
    writes no EXIF, XMP or IPTC unless given them, and none is given."""
    out = io.BytesIO()
    options: dict = {}
    if "icc_profile" in image.info:
        options["icc_profile"] = image.info["icc_profile"]
    if image_format == "JPEG":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        quantization = getattr(source, "quantization", None)
        if quantization:
            options["qtables"] = quantization  # the original's own quality: no visible loss from stripping
        else:
            options["quality"] = 85
        image.save(out, "JPEG", optimize=True, **options)
    elif image_format == "PNG":
        if "transparency" in image.info:
            options["transparency"] = image.info["transparency"]
        image.save(out, "PNG", **options)
    else:
        image.save(out, "WEBP", quality=90 if source is not None else 85, **options)
    return out.getvalue()


def _document(data: bytes, where: str) -> Cleaned:
    import pikepdf

    try:
        with pikepdf.open(io.BytesIO(data), attempt_recovery=False) as pdf:
            if len(pdf.pages) == 0:
                raise InputError("the PDF has no pages", where=where)
            for page in pdf.pages:  # a parse of every page, so that a truncated file is refused now
                _ = page.obj.get("/Contents")
            if "/Info" in pdf.trailer:
                del pdf.trailer["/Info"]
            if "/Metadata" in pdf.Root:
                del pdf.Root["/Metadata"]
            out = io.BytesIO()
            pdf.save(out, fix_metadata_version=False, deterministic_id=True)
    except pikepdf.PasswordError:
        raise InputError("the PDF is encrypted; expected a document anyone can open", where=where) from None
    except InputError:
        raise
    except (pikepdf.PdfError, ValueError, OSError, RecursionError) as exc:
        reason = re.sub(r"^.*?<[^>]*>:\s*", "", str(exc).splitlines()[0] if str(exc) else "") or "corrupt"
        raise InputError(f"not a readable PDF document ({reason[:200]})", where=where) from None
    return Cleaned("document", PDF[0], PDF[1], out.getvalue())
