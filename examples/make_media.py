"""Makes the example statement's photo and document (fictional, drawn here), as a camera and an office's software
would leave them: the photo with EXIF naming a camera and a GPS position, the PDF with an author and its software
in its document information. distributor strips all of it; `make demo` shows the photo in the newsroom without it.

    .venv/bin/python examples/make_media.py     → examples/statements/pipeline-route.jpg, pipeline-briefing.pdf
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pikepdf
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent / "statements"
PHOTO = HERE / "pipeline-route.jpg"
DOCUMENT = HERE / "pipeline-briefing.pdf"
GPS_IFD = 0x8825
# A made-up position, in the open South Pacific, so that it names nobody's home.
POSITION = {1: "S", 2: (41.0, 12.0, 30.0), 3: "W", 4: (117.0, 40.0, 15.0)}


def photo() -> bytes:
    """A drawing of houses on a hillside above a pipeline trench, under a rain cloud."""
    width, height = 1600, 1000
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(620):  # the sky, lighter towards the horizon
        shade = 150 + y * 80 // 620
        draw.line([(0, y), (width, y)], fill=(shade - 40, shade - 10, shade + 20))
    draw.ellipse([980, 80, 1440, 300], fill=(110, 115, 125))  # the cloud
    draw.ellipse([1150, 40, 1560, 260], fill=(120, 125, 135))
    for x in range(1010, 1500, 38):  # its rain
        draw.line([(x, 270), (x - 30, 420)], fill=(150, 165, 185), width=3)
    draw.polygon([(0, 560), (520, 430), (1100, 520), (width, 470), (width, height), (0, height)], fill=(96, 128, 72))
    houses = [(120, 500, (196, 112, 74)), (330, 462, (226, 196, 120)), (560, 452, (176, 80, 66)),
              (780, 478, (210, 170, 110))]
    for x, y, colour in houses:
        draw.rectangle([x, y, x + 150, y + 110], fill=colour)
        draw.polygon([(x - 14, y), (x + 75, y - 70), (x + 164, y)], fill=(92, 60, 48))
        draw.rectangle([x + 58, y + 50, x + 92, y + 110], fill=(60, 44, 36))
    draw.polygon([(0, 760), (width, 700), (width, 780), (0, 850)], fill=(120, 92, 62))  # the trench
    draw.rectangle([0, 790, width, 808], fill=(150, 150, 156))  # the pipe
    for x in range(40, width, 180):  # bulldozer tracks
        draw.rectangle([x, 880, x + 120, 900], fill=(80, 100, 58))
    exif = Image.Exif()
    exif[0x010F] = "ExampleCam"          # Make
    exif[0x0110] = "EC-1 serial 0042"    # Model
    exif[0x0132] = "2026:11:03 06:12:00"  # DateTime
    exif[GPS_IFD] = POSITION
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80, optimize=True, exif=exif)
    return out.getvalue()


def text_page(lines: list[tuple[int, str]]) -> bytes:
    """A page's content stream: each line in Helvetica at its size, top to bottom."""
    parts = ["BT", "72 770 Td"]
    for size, line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        parts.append(f"/F1 {size} Tf 0 -{size + 8} Td ({escaped}) Tj")
    parts.append("ET")
    return "\n".join(parts).encode("latin-1")


def document() -> bytes:
    """A two-page briefing, its document information naming a researcher and the software, as offices' PDFs do."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    pages = [
        [(20, "Valdoria: the Rio Claro pipeline route"), (12, "Northfield Human Rights Network - briefing (fictional)"),
         (12, ""), (12, "Settlements on the route: San Andres, Pueblo Nuevo."),
         (12, "Households given notice: more than 3,000."), (12, "Notice given: less than a week; no written decision."),
         (12, "Alternative housing offered: none.")],
        [(16, "What the Network asks for"), (12, "1. A moratorium on evictions until a genuine consultation."),
         (12, "2. Adequate notice, written reasons and a right of appeal."),
         (12, "3. Alternative housing or fair compensation.")],
    ]
    for lines in pages:
        page = pdf.add_blank_page(page_size=(595, 842))
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.obj.Contents = pdf.make_stream(text_page(lines))
    pdf.docinfo["/Title"] = "Rio Claro pipeline briefing"
    pdf.docinfo["/Author"] = "Field researcher, Pueblo Nuevo office"
    pdf.docinfo["/Producer"] = "ExampleWriter 3.1"
    out = io.BytesIO()
    pdf.save(out, deterministic_id=True)
    return out.getvalue()


def main() -> int:
    PHOTO.write_bytes(photo())
    DOCUMENT.write_bytes(document())
    for path in (PHOTO, DOCUMENT):
        print(f"{path.relative_to(HERE.parent.parent)}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
