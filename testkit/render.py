"""Images with known text, drawn by the tests themselves (no data files needed)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

RECEIPT_LINES = [
    ("SUNRISE TRADING SDN BHD", None),
    ("NO. 12, JALAN MERANTI 3", None),
    ("47100 PUCHONG, SELANGOR", None),
    ("DATE: 14/03/2019", None),
    ("COFFEE", "4.50"),
    ("BREAD", "5.50"),
    ("TOTAL", "10.00"),
]


def render_lines(
    lines: list[tuple[str, str | None]] | list[str],
    size: tuple[int, int] = (900, 700),
    font_size: int = 30,
) -> Image.Image:
    """Black text on white, one entry per line; a (left, right) pair puts the right
    text flush right on the same line, as on a receipt."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_size)
    y = 40
    for entry in lines:
        left, right = (entry, None) if isinstance(entry, str) else entry
        draw.text((50, y), left, fill="black", font=font)
        if right:
            width = draw.textlength(right, font=font)
            draw.text((size[0] - 60 - width, y), right, fill="black", font=font)
        y += int(font_size * 1.8)
    return image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def pdf_bytes(images: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:], resolution=100)
    return buffer.getvalue()


def accented_page() -> Image.Image:
    """Two lines with an acute stroke drawn just above one capital of each: RapidOCR
    reads "SETIA ÁLAM 40170" and "CAFÉ 4.50" when it may write accents."""
    font = ImageFont.load_default(size=40)
    image = Image.new("RGB", (700, 280), "white")
    draw = ImageDraw.Draw(image)
    for top, before, rest in ((40, "SETIA ", "ALAM 40170"), (160, "CAF", "E 4.50")):
        draw.text((20, top), before + rest, fill="black", font=font)
        _, cap_top, right, _ = draw.textbbox((20, top), before + rest[0], font=font)
        _, _, left, _ = draw.textbbox((20, top), before, font=font)
        middle = (left + right) / 2
        draw.line([(middle - 4, cap_top - 3), (middle + 5, cap_top - 12)], fill="black", width=4)
    return image
