"""Tests for utils.documents: uploads in, validated RGB pages out; deskew and turns."""

from __future__ import annotations

import gc
import hashlib
import inspect
import io
import struct
import unicodedata
import weakref
import zlib
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin
from pydantic import ValidationError

from utils.documents.colour import to_rgb
from utils.documents.document import Document, load_document
from utils.documents.geometry import deskew, rotate_quarter, skew_from_pixels
from utils.documents.limits import DocumentLimits
from utils.documents.page import Page
from utils.documents.uploads import detect_kind, read_upload_file, sanitize_filename
from utils.errors import BadInput

# --- builders ----------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def build_pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A minimal PDF from object bodies (object 1 is the catalog), with a correct xref."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R " % (len(objects) + 1) + trailer_extra + b">>\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def text_pdf(text: bytes = b"Hello PDF", rotate: int = 0) -> bytes:
    """One US-letter page (612x792 pt) with a real text layer in Helvetica."""
    content = b"BT /F1 24 Tf 72 720 Td (" + text + b") Tj ET"
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Rotate %d " % rotate
            + b"/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def image_pdf(sizes: list[tuple[int, int]]) -> bytes:
    """A PDF with one page per size; Pillow writes 72 dpi, so pixels = points."""
    images = [Image.new("RGB", size, (255, 255, 255)) for size in sizes]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:])


def encrypted_pdf() -> bytes:
    """A PDF with a Standard security handler whose empty user password does not match."""
    encrypt = b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>" % (b"11" * 32, b"22" * 32)
    return build_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
            encrypt,
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        ],
        trailer_extra=b"/Encrypt 3 0 R /ID [<00112233445566778899aabbccddeeff> "
        b"<00112233445566778899aabbccddeeff>] ",
    )


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR (and CRC) is patched to claim another size."""
    data = bytearray(encode(Image.new("L", (8, 8), 255), "PNG"))
    # 8-byte signature, 4-byte length, b"IHDR", then width and height, then CRC at 29.
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def text_page(size: tuple[int, int] = (1200, 1600), lines: int = 30) -> Image.Image:
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=24)
    for row in range(lines):
        draw.text(
            (60, 60 + row * 48), "The quick brown fox jumps over the lazy dog 0123", font=font
        )
    return image


@pytest.fixture
def limits() -> DocumentLimits:
    return DocumentLimits(max_side=0)


def only_page(document: Document) -> Page:
    pages = list(document.pages())
    assert len(pages) == 1
    return pages[0]


# --- limits ------------------------------------------------------------------------------


def test_limits_defaults_and_unknown_keys():
    default = DocumentLimits()
    assert (default.max_file_mb, default.max_megapixels, default.max_pages) == (50, 60, 200)
    assert (default.pdf_dpi, default.max_side) == (200, 2500)
    with pytest.raises(ValidationError):
        DocumentLimits(max_pixels=10)
    with pytest.raises(ValidationError):
        DocumentLimits(max_side=-1)


# --- supported formats -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_single_image_formats_round_trip_to_rgb(fmt, limits):
    data = encode(Image.new("RGB", (64, 48), (200, 30, 30)), fmt)
    document = load_document(data, f"scan.{fmt.lower()}", limits)
    assert (document.kind, document.page_count) == ("image", 1)
    assert document.sha256 == hashlib.sha256(data).hexdigest()
    page = only_page(document)
    assert (page.index, page.image.mode, page.image.size) == (0, "RGB", (64, 48))
    assert (page.original_size, page.scale, page.embedded_text) == ((64, 48), 1.0, None)
    red, green, blue = page.image.getpixel((32, 24))
    assert red > 150 and green < 80 and blue < 80


def test_multi_frame_tiff_gives_one_page_per_frame(limits):
    sizes = [(40, 30), (30, 40), (20, 20)]
    frames = [Image.new("RGB", size, (i * 100, 0, 0)) for i, size in enumerate(sizes)]
    data = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    document = load_document(data, "fax.tiff", limits)
    assert document.page_count == 3
    pages = list(document.pages())
    assert [page.index for page in pages] == [0, 1, 2]
    assert [page.image.size for page in pages] == sizes
    assert [page.image.getpixel((0, 0))[0] for page in pages] == [0, 100, 200]


def test_animated_gif_is_one_page_of_its_first_frame(limits):
    frames = [Image.new("RGB", (32, 32), color) for color in ("white", "black", "red")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    document = load_document(data, "anim.gif", limits)
    assert document.page_count == 1
    assert only_page(document).image.getpixel((5, 5)) == (255, 255, 255)


def test_pdf_pages_render_at_the_configured_dpi():
    data = image_pdf([(300, 200), (200, 300), (100, 100)])
    document = load_document(data, "report.pdf", DocumentLimits(pdf_dpi=144, max_side=0))
    assert (document.kind, document.page_count) == ("pdf", 3)
    pages = list(document.pages())
    for page, expected in zip(pages, [(600, 400), (400, 600), (200, 200)], strict=True):
        assert page.image.mode == "RGB"
        assert page.original_size == expected
        assert page.scale == 1.0
        assert abs(page.image.width - expected[0]) <= 1
        assert abs(page.image.height - expected[1]) <= 1
        assert page.embedded_text is None  # an image-only PDF has no text layer


def test_pdf_text_layer_is_extracted(limits):
    page = only_page(load_document(text_pdf(b"Invoice 42"), "invoice.pdf", limits))
    assert page.embedded_text == "Invoice 42"
    assert page.original_size == (1700, 2200)  # 8.5 x 11 in at 200 dpi
    # The text is drawn, not only stored: the top-left area holds dark pixels.
    top_left = np.asarray(page.image.crop((150, 180, 700, 300)).convert("L"))
    assert top_left.min() < 100


def test_pdf_page_rotation_is_applied(limits):
    page = only_page(load_document(text_pdf(rotate=90), "turned.pdf", limits))
    assert page.original_size == (2200, 1700)
    assert page.image.width > page.image.height


def test_pdf_page_over_the_pixel_limit_renders_smaller_instead_of_failing():
    limits = DocumentLimits(max_megapixels=0.5, max_side=0)
    page = only_page(load_document(text_pdf(), "big.pdf", limits))
    assert page.original_size == (1700, 2200)
    assert page.image.width * page.image.height <= 0.51e6
    assert page.scale == pytest.approx((0.5e6 / (1700 * 2200)) ** 0.5)
    assert page.image.width == pytest.approx(1700 * page.scale, abs=1)


def test_pdf_respects_the_longest_side_budget():
    page = only_page(load_document(text_pdf(), "a.pdf", DocumentLimits(max_side=1100)))
    assert page.scale == pytest.approx(0.5)
    assert abs(page.image.height - 1100) <= 1


# --- normalisation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "upright_size", "red_at", "blue_at"),
    [
        (6, (40, 80), (20, 10), (20, 70)),  # turn 90° clockwise: stored left goes on top
        (8, (40, 80), (20, 70), (20, 10)),  # turn 90° counter-clockwise: left to bottom
        (3, (80, 40), (70, 20), (10, 20)),  # turn 180°: left goes right
    ],
)
def test_exif_orientation_turns_the_page_upright(orientation, upright_size, red_at, blue_at):
    stored = Image.new("RGB", (80, 40), (255, 0, 0))
    stored.paste((0, 0, 255), (40, 0, 80, 40))  # left red, right blue as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "JPEG", exif=exif, quality=95)
    page = only_page(load_document(data, "phone.jpg", DocumentLimits(max_side=0)))
    assert page.image.size == upright_size
    assert page.original_size == upright_size
    red, blue = page.image.getpixel(red_at), page.image.getpixel(blue_at)
    assert red[0] > 200 and red[2] < 60
    assert blue[2] > 200 and blue[0] < 60


def test_exif_orientation_with_the_pixel_budget_keeps_the_upright_shape():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.new("RGB", (4000, 2000), "white"), "JPEG", exif=exif)
    page = only_page(load_document(data, "phone.jpg", DocumentLimits(max_side=1000)))
    assert page.original_size == (2000, 4000)
    assert page.image.size == (500, 1000)
    assert page.scale == pytest.approx(0.25)


def test_cmyk_becomes_rgb(limits):
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "TIFF")
    page = only_page(load_document(data, "print.tif", limits))
    assert page.image.mode == "RGB"
    assert page.image.getpixel((8, 8)) == (255, 0, 0)


def test_16_bit_grey_keeps_its_tones(limits):
    levels = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    source = Image.fromarray(levels)
    assert source.mode.startswith("I;16")
    page = only_page(load_document(encode(source, "PNG"), "scan16.png", limits))
    row = [page.image.getpixel((x, 0))[0] for x in range(4)]
    assert row == [0, 64, 128, 255]


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I", [0, 300, 65535], [0, 1, 255]),  # 16-bit data held in a 32-bit mode
        ("I", [-100, 0, 100], [0, 128, 255]),  # unknown range: stretched
        ("I", [0, 128, 255], [0, 128, 255]),  # already 8-bit: unchanged
        ("F", [0.0, 0.5, 1.0], [0, 128, 255]),  # float 0..1
    ],
)
def test_32_bit_modes_map_onto_bytes(mode, values, expected):
    dtype = np.int32 if mode == "I" else np.float32
    image = Image.fromarray(np.array([values], dtype=dtype))
    assert image.mode == mode
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert [rgb.getpixel((x, 0))[0] for x in range(3)] == expected


def test_one_bit_and_palette_images_become_rgb(limits):
    bilevel = Image.new("1", (10, 10), 1)
    bilevel.putpixel((0, 0), 0)
    page = only_page(load_document(encode(bilevel, "PNG"), "fax.png", limits))
    assert page.image.getpixel((0, 0)) == (0, 0, 0)
    assert page.image.getpixel((5, 5)) == (255, 255, 255)
    palette = Image.new("RGB", (10, 10), (0, 128, 0)).convert("P", palette=Image.Palette.ADAPTIVE)
    page = only_page(load_document(encode(palette, "PNG"), "pal.png", limits))
    assert page.image.mode == "RGB"
    assert page.image.getpixel((5, 5)) == (0, 128, 0)


def test_palette_transparency_is_composited_onto_white(limits):
    image = Image.new("P", (10, 10), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((9, 9), 1)
    data = encode(image, "PNG", transparency=0)  # palette index 0 (black) is transparent
    page = only_page(load_document(data, "logo.png", limits))
    assert page.image.getpixel((0, 0)) == (255, 255, 255)
    assert page.image.getpixel((9, 9)) == (255, 0, 0)


@pytest.mark.parametrize(
    ("mode", "transparent", "half"),
    [("RGBA", (0, 0, 0, 0), (0, 0, 0, 128)), ("LA", (0, 0), (0, 128))],
)
def test_alpha_is_composited_onto_white_not_black(mode, transparent, half, limits):
    image = Image.new(mode, (10, 10), transparent)
    image.putpixel((9, 9), half)
    page = only_page(load_document(encode(image, "PNG"), "sig.png", limits))
    assert page.image.getpixel((0, 0)) == (255, 255, 255)
    assert all(abs(channel - 127) <= 1 for channel in page.image.getpixel((9, 9)))


def test_pixel_budget_downscales_and_records_the_scale():
    image = Image.new("RGB", (3000, 1000), "white")
    image.paste((0, 0, 0), (1500, 500, 1800, 600))  # a box to map back
    page = only_page(load_document(encode(image, "PNG"), "wide.png", DocumentLimits(max_side=1000)))
    assert page.image.size == (1000, 333)
    assert page.original_size == (3000, 1000)
    assert page.scale == pytest.approx(1 / 3)
    # The box found on the processed page maps back to the original by dividing by scale.
    dark = np.argwhere(np.asarray(page.image.convert("L")) < 128)
    (top, left), (bottom, right) = dark.min(axis=0), dark.max(axis=0)
    assert left / page.scale == pytest.approx(1500, abs=6)
    assert (right + 1) / page.scale == pytest.approx(1800, abs=6)
    assert top / page.scale == pytest.approx(500, abs=6)
    assert (bottom + 1) / page.scale == pytest.approx(600, abs=6)


def test_jpeg_budget_gives_the_exact_target_size_when_decoding_reduced():
    image = Image.new("RGB", (4000, 3000), "white")
    data = encode(image, "JPEG")
    page = only_page(load_document(data, "photo.jpg", DocumentLimits(max_side=900)))
    assert page.image.size == (900, 675)
    assert page.original_size == (4000, 3000)
    assert page.scale == pytest.approx(900 / 4000)


def test_no_budget_when_max_side_is_zero():
    data = encode(Image.new("RGB", (3000, 200)), "PNG")
    page = only_page(load_document(data, "strip.png", DocumentLimits(max_side=0)))
    assert (page.image.size, page.scale) == ((3000, 200), 1.0)


# --- bad input ---------------------------------------------------------------------------


def assert_bad_input(data: bytes, filename: str, limits: DocumentLimits, *words: str) -> BadInput:
    with pytest.raises(BadInput) as caught:
        document = load_document(data, filename, limits)
        list(document.pages())
    message = str(caught.value)
    assert sanitize_filename(filename) in message
    for word in words:
        assert word in message.lower()
    assert caught.value.hint
    return caught.value


def test_empty_file(limits):
    assert_bad_input(b"", "blank.png", limits, "empty")


def test_file_over_the_size_limit():
    data = encode(Image.new("RGB", (64, 64)), "BMP")  # ~12 KB
    assert_bad_input(data, "big.bmp", DocumentLimits(max_file_mb=0.005), "over the limit", "mb")


def test_text_file_named_png_is_not_an_image(limits):
    error = assert_bad_input(b"hello, I am text\n", "photo.png", limits, "not an image or a pdf")
    assert "png" in error.hint.lower()


def test_truncated_jpeg_fails_when_its_page_is_decoded(limits):
    data = encode(Image.effect_noise((200, 100), 64).convert("RGB"), "JPEG")
    document = load_document(data[: len(data) // 2], "cut.jpg", limits)  # the header is fine
    with pytest.raises(BadInput, match="cut.jpg") as caught:
        list(document.pages())
    assert "truncated" in str(caught.value)


def test_damaged_second_tiff_frame_names_its_page(limits):
    frames = [Image.new("RGB", (50, 40), (i * 80, 0, 0)) for i in range(2)]
    data = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    document = load_document(data[:-1000], "scan.tif", limits)
    pages = document.pages()
    assert next(pages).index == 0
    with pytest.raises(BadInput, match="scan.tif page 2"):
        next(pages)


def test_header_over_the_pixel_limit_is_refused_before_decoding():
    # 12000 x 6000 = 72 MP: over our 60 MP, under Pillow's own bomb guard. Its pixel data
    # is 8x8, so decoding it would fail as truncated, not as too large.
    data = png_claiming_size(12000, 6000)
    assert_bad_input(data, "huge.png", DocumentLimits(), "megapixels", "60")


def test_decompression_bomb_is_refused_and_pillows_guard_is_left_alone():
    guard = Image.MAX_IMAGE_PIXELS
    data = png_claiming_size(30000, 30000)
    assert_bad_input(data, "bomb.png", DocumentLimits(), "megapixels")
    assert_bad_input(data, "bomb.png", DocumentLimits(max_megapixels=5000), "megapixels")
    assert guard == Image.MAX_IMAGE_PIXELS


def test_tiff_frame_over_the_pixel_limit_is_refused_up_front():
    frames = [Image.new("1", (100, 100)), Image.new("1", (2000, 1000))]
    data = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    assert_bad_input(data, "scan.tif", DocumentLimits(max_megapixels=1), "page 2", "megapixels")


def test_encrypted_pdf_is_reported_as_password_protected(limits):
    with pytest.raises(pdfium.PdfiumError):  # PDFium itself refuses it
        pdfium.PdfDocument(encrypted_pdf())
    assert_bad_input(encrypted_pdf(), "secret.pdf", limits, "password")


def test_pdf_without_pages(limits):
    data = build_pdf(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    )
    assert_bad_input(data, "empty.pdf", limits, "no pages")


def test_pdf_errors_do_not_carry_over_between_files(limits):
    # PDFium keeps its last error code until the next failed load; an empty PDF opened
    # right after an encrypted one must still be reported as empty.
    empty = build_pdf(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Count 0 /Kids [] >>"]
    )
    for _ in range(2):
        assert_bad_input(encrypted_pdf(), "secret.pdf", limits, "password")
        assert_bad_input(empty, "empty.pdf", limits, "no pages")
        assert_bad_input(b"%PDF-1.4 junk", "junk.pdf", limits, "damaged")


def test_pdf_with_too_many_pages():
    data = image_pdf([(50, 50)] * 5)
    assert_bad_input(data, "long.pdf", DocumentLimits(max_pages=3), "5 pages", "limit of 3")


def test_tiff_with_too_many_frames():
    frames = [Image.new("L", (8, 8))] * 5
    data = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    assert_bad_input(data, "fax.tif", DocumentLimits(max_pages=3), "5 pages", "limit of 3")


def test_garbage_after_the_pdf_magic(limits):
    assert_bad_input(b"%PDF-1.7\n" + bytes(range(256)) * 4, "broken.pdf", limits, "pdf")


def test_error_names_the_sanitised_file(limits):
    with pytest.raises(BadInput) as caught:
        load_document(b"", "../../etc/\u202emal.png", limits)
    assert "mal.png" in str(caught.value)
    assert "\u202e" not in str(caught.value) and "/" not in str(caught.value)


# --- laziness ----------------------------------------------------------------------------


def test_pages_is_a_lazy_generator_over_a_50_page_pdf():
    document = load_document(image_pdf([(72, 72)] * 50), "long.pdf", DocumentLimits())
    assert document.page_count == 50
    pages = document.pages()
    assert inspect.isgenerator(pages)
    first = next(pages)
    first_image = weakref.ref(first.image)
    del first
    count = 1
    for page in pages:
        if count == 1:
            gc.collect()
            assert first_image() is None  # nothing keeps earlier pages alive
        assert page.index == count and page.image.size == (200, 200)
        count += 1
    assert count == 50


def test_pages_can_be_iterated_again_and_closed_early(limits):
    document = load_document(image_pdf([(72, 72)] * 3), "a.pdf", limits)
    partial = document.pages()
    next(partial)
    partial.close()  # releases the PDF; a new iteration starts over
    assert [page.index for page in document.pages()] == [0, 1, 2]


# --- names and kinds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\scan 01.pdf", "scan 01.pdf"),
        ("in\x00voice.png", "invoice.png"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("\u200f\u2066x\u2069.jpg", "x.jpg"),
        ("e\u0301te\u0301.png", "\u00e9t\u00e9.png"),
        ("  a \t\n  b .png ", "a b .png"),
        ("", "upload"),
        ("..", "upload"),
        ("dir/", "upload"),
        ("\x00\x01", "upload"),
        (".hidden.png", "hidden.png"),
    ],
)
def test_sanitize_filename_cases(raw, expected):
    assert sanitize_filename(raw) == expected


def test_sanitize_filename_caps_length_and_keeps_the_extension():
    name = sanitize_filename("x" * 300 + ".png")
    assert len(name) == 120 and name.endswith(".png")
    assert len(sanitize_filename("y" * 300)) == 120


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_sanitize_filename_output_is_always_safe(raw):
    name = sanitize_filename(raw)
    assert 0 < len(name) <= 120
    assert "/" not in name and "\\" not in name and name not in (".", "..")
    assert all(unicodedata.category(ch) not in ("Cc", "Cs") for ch in name)
    assert not set(name) & set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068")
    assert unicodedata.is_normalized("NFC", name) or len(raw) > 120


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"%PDF-1.7\n...", "pdf"),
        (b"\x00" * 100 + b"%PDF-1.4", "pdf"),  # header later in the first KB
        (b"\x89PNG\r\n\x1a\n....", "image"),
        (b"\xff\xd8\xff\xe0....", "image"),
        (b"GIF89a....", "image"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image"),
        (b"BM......", "image"),
        (b"II*\x00....", "image"),
        (b"MM\x00*....", "image"),
    ],
)
def test_detect_kind_by_magic_bytes(data, kind):
    assert detect_kind(data) == kind


def test_an_image_mentioning_pdf_in_its_metadata_is_still_an_image():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "%PDF-1.4 exported from a PDF")
    data = encode(Image.new("RGB", (8, 8)), "PNG", pnginfo=info)
    assert b"%PDF-" in data[:1024]
    assert detect_kind(data) == "image"


def test_detect_kind_refuses_unknown_bytes():
    with pytest.raises(BadInput, match="notes.png"):
        detect_kind(b"just some text", "notes.png")


# --- fuzzing: only BadInput escapes ------------------------------------------------------

MAGICS = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"%PDF-1.4\n",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"RIFF\x10\x00\x00\x00WEBPVP8 ",
]
FUZZ_LIMITS = DocumentLimits(max_megapixels=2, max_pages=20, max_side=500, pdf_dpi=72)


def consume(data: bytes) -> None:
    try:
        document = load_document(data, "fuzz.bin", FUZZ_LIMITS)
        for page in document.pages():
            assert page.image.mode == "RGB"
    except BadInput as error:
        assert "fuzz.bin" in str(error)


# Pillow warns about the damage it skips over ("Corrupt EXIF data"); expected here.
@pytest.mark.filterwarnings("ignore::UserWarning:PIL")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MAGICS), st.binary(max_size=1024))
def test_random_bytes_only_raise_bad_input(magic, tail):
    consume(magic + tail)


SEED_FILES = [
    encode(Image.new("RGB", (20, 10), "white"), "PNG"),
    encode(Image.new("RGB", (20, 10), "white"), "JPEG"),
    encode(Image.new("P", (20, 10)), "GIF"),
    encode(
        Image.new("RGB", (20, 10)), "TIFF", save_all=True, append_images=[Image.new("L", (5, 5))]
    ),
    encode(Image.new("RGBA", (20, 10)), "WEBP"),
    encode(Image.new("1", (20, 10)), "BMP"),
    text_pdf(),
]


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEED_FILES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    st.integers(0, 10_000),
)
def test_damaged_real_files_only_raise_bad_input(seed, edits, cut):
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    consume(bytes(data[: max(1, len(data) - cut % len(data))]))


# --- deskew and quarter turns ------------------------------------------------------------


@pytest.mark.parametrize("angle", [-7.5, -3.0, 0.0, 1.5, 4.0, 9.0])
def test_skew_from_pixels_finds_a_known_rotation(angle):
    tilted = text_page().rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
    assert skew_from_pixels(tilted.convert("RGB")) == pytest.approx(angle, abs=0.3)


def test_deskew_straightens_the_page():
    tilted = text_page().rotate(5.0, resample=Image.Resampling.BICUBIC, fillcolor=255)
    straight, angle = deskew(tilted.convert("RGB"))
    assert angle == pytest.approx(5.0, abs=0.3)
    assert straight.mode == "RGB"
    assert straight.width > tilted.width  # expanded, not cropped
    assert straight.getpixel((0, 0)) == (255, 255, 255)  # corners filled with white
    assert skew_from_pixels(straight) == pytest.approx(0.0, abs=0.3)
    grey, _ = deskew(tilted)
    assert grey.mode == "L" and grey.getpixel((0, 0)) == 255
    rgba, _ = deskew(tilted.convert("RGBA"))
    assert rgba.mode == "RGB"


def test_deskew_leaves_straight_and_blank_pages_alone():
    straight = text_page()
    assert deskew(straight) == (straight, 0.0)
    blank = Image.new("RGB", (300, 200), "white")
    assert deskew(blank) == (blank, 0.0)


def test_skew_from_pixels_handles_light_text_on_dark():
    inverted = Image.eval(text_page(), lambda value: 255 - value)
    tilted = inverted.rotate(-4.0, resample=Image.Resampling.BICUBIC, fillcolor=0)
    assert skew_from_pixels(tilted) == pytest.approx(-4.0, abs=0.3)


def test_rotate_quarter_turns_counter_clockwise_like_rot90():
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    image = Image.fromarray(pixels)
    for k in (-1, 0, 1, 2, 3, 4, 5):
        turned = np.asarray(rotate_quarter(image, k))
        assert np.array_equal(turned, np.rot90(pixels, k))


# --- files read from disk ----------------------------------------------------------------


def test_read_upload_file_refuses_a_large_file_by_its_size(tmp_path):
    huge = tmp_path / "huge.pdf"
    with huge.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)  # sparse: nothing to read, 200 MB by stat
    with pytest.raises(BadInput, match=r"huge.pdf is 200.0 MB, over the limit of 1 MB"):
        read_upload_file(huge, DocumentLimits(max_file_mb=1))


def test_read_upload_file_reads_a_stream_only_up_to_the_limit():
    with pytest.raises(BadInput, match="zero is over the limit of 1 MB"):
        read_upload_file(Path("/dev/zero"), DocumentLimits(max_file_mb=1))


def test_read_upload_file_reads_small_files_and_refuses_empty_ones(tmp_path):
    data = encode(Image.new("RGB", (8, 8)), "PNG")
    (tmp_path / "small.png").write_bytes(data)
    assert read_upload_file(tmp_path / "small.png", DocumentLimits()) == data
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BadInput, match="empty.png is empty"):
        read_upload_file(tmp_path / "empty.png", DocumentLimits())
    # Files under /proc are regular but report a size of 0: they are read all the same.
    assert read_upload_file(Path("/proc/self/status"), DocumentLimits()).startswith(b"Name:")
    with pytest.raises(OSError):
        read_upload_file(tmp_path / "missing.png", DocumentLimits())
