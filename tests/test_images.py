"""The one image loader against hostile files: 16-bit, EXIF-rotated, palette/alpha, misnamed, truncated, strips.

Every file is built here with PIL in a temporary folder.
"""
import html
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lora_core.data.coords import OriginalFrame, to_original
from lora_core.data.images import ImageInputError, open_screenshot, read_image_size
from lora_core.data.samples import normalize_record
from tests.conftest import PEER_DATA
from tests.images import truncated_png

FIGURE = PEER_DATA / "mai-ui" / "screenshots" / "figure1.png"


def sixteen_bit_png(path: Path, width: int = 320, height: int = 240) -> tuple[Path, np.ndarray]:
    """A 16-bit grey PNG: a dark-to-mid gradient (values 0–40000), like a scanner or HDR capture."""
    values = np.linspace(0, 40000, width * height).reshape(height, width).astype(np.uint16)
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    return path, values


def exif_jpeg(path: Path, orientation: int = 6, raw_size=(1200, 600)) -> Path:
    """A phone JPEG stored sideways (raw 1200×600) with an orientation tag; shown as 600×1200."""
    image = Image.new("RGB", raw_size, (40, 40, 40))
    image.paste((250, 20, 20), (0, 0, 200, 100))  # a red block in the raw top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), quality=95)
    return path


def one_image_sample(folder: Path, name: str, where: str = "data.jsonl, line 1"):
    record = {"messages": [{"role": "user", "content": [{"type": "image", "image": name},
                                                        {"type": "text", "text": "Open the menu."}]},
                           {"role": "assistant", "content": "click(500, 1100)"}]}
    return normalize_record(record, folder, where=where)


# --- 16-bit -----------------------------------------------------------------------------------


def test_a_16_bit_png_keeps_its_brightness(tmp_path):
    path, values = sixteen_bit_png(tmp_path / "scan.png")
    pixels = np.asarray(open_screenshot(path)).astype(float)
    assert pixels.shape == (240, 320, 3)
    assert pixels.mean() == pytest.approx(values.mean() / 257, abs=1.0)  # v → v/257, not clipped to 255
    assert (pixels == 255).mean() < 0.01  # old code: 99 % white
    assert np.abs(pixels[..., 0] - values / 257).max() <= 0.5 + 1e-9


def test_other_high_depth_modes_are_scaled_not_clipped(tmp_path):
    from lora_core.data.images import to_rgb

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64)
    for image in (Image.frombytes("I;16B", (64, 64), ramp.astype(">u2").tobytes()),
                  Image.fromarray(ramp.astype(np.int32)),  # mode I
                  Image.fromarray((ramp / 65535).astype(np.float32))):  # mode F, 0–1
        assert np.asarray(to_rgb(image)).mean() == pytest.approx(127.5, abs=1.0), image.mode


# --- EXIF orientation -------------------------------------------------------------------------


def test_exif_orientation_puts_sizes_and_clicks_in_the_displayed_frame(tmp_path):
    path = exif_jpeg(tmp_path / "phone.jpg")
    size = read_image_size(path)
    assert size == (600, 1200)  # from the header: orientation 6 swaps width and height
    assert to_original(500, 1100, "abs-original", OriginalFrame(*size)) == (500.0, 1100.0)  # old code: out of range
    image = open_screenshot(path)
    assert image.size == size
    upright = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    assert np.array_equal(np.asarray(image), np.asarray(upright))
    assert np.asarray(image)[50, 550].tolist()[0] > 200  # the raw top-left block now sits at the top right


def test_read_image_size_finds_a_png_exif_chunk_after_the_pixels(tmp_path):
    """PIL's own PNG getexif() decodes the pixels to find an eXIf placed after IDAT; the header read walks chunks."""
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (300, 100), "white").save(tmp_path / "early.png", exif=exif.tobytes())
    data, position, chunks = (tmp_path / "early.png").read_bytes(), 8, []
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunks.append((kind, data[position:position + 12 + length]))
        position += 12 + length
    order = [c for k, c in chunks if k not in (b"eXIf", b"IEND")] + [c for k, c in chunks if k == b"eXIf"]
    late = tmp_path / "late.png"
    late.write_bytes(data[:8] + b"".join(order) + chunks[-1][1])
    assert read_image_size(late) == (100, 300) == open_screenshot(late).size


def test_the_trainer_gets_the_displayed_frame(tmp_path, encoder):
    from lora_core.training.collate import PixelCache

    path = exif_jpeg(tmp_path / "phone.jpg")
    geom = encoder.image_geometry(path)
    assert (geom.width, geom.height) == (600, 1200)
    values, grid = PixelCache(encoder).pixels(path, geom)
    expected, expected_grid = encoder.pixels(ImageOps.exif_transpose(Image.open(path)).convert("RGB"), geom)
    assert grid.tolist() == expected_grid.tolist() and np.array_equal(values.numpy(), expected.numpy())


# --- palette and alpha ------------------------------------------------------------------------


def test_palette_with_transparency_is_composited_onto_white(tmp_path):
    image = Image.new("P", (40, 20), 0)
    image.putpalette([0, 0, 0, 0, 90, 200] + [0] * 762)  # index 0 black (transparent), index 1 blue
    image.paste(1, (0, 0, 20, 20))
    image.save(tmp_path / "icon.png", transparency=0)
    pixels = np.asarray(open_screenshot(tmp_path / "icon.png"))
    assert pixels[10, 30].tolist() == [255, 255, 255]  # old code: black
    assert pixels[10, 5].tolist() == [0, 90, 200]
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 5, 10))
    rgba.save(tmp_path / "alpha.png")
    pixels = np.asarray(open_screenshot(tmp_path / "alpha.png"))
    assert pixels[5, 8].tolist() == [255, 255, 255] and pixels[5, 2].tolist() == [255, 0, 0]
    Image.new("LA", (4, 4), (0, 0)).save(tmp_path / "la.png")
    assert np.asarray(open_screenshot(tmp_path / "la.png"))[0, 0].tolist() == [255, 255, 255]


# --- stored under the real extension ----------------------------------------------------------


def test_the_store_keeps_a_gif_as_gif(tmp_path):
    import hashlib

    from authoring.store import Store

    misnamed = tmp_path / "screen.png"
    Image.new("P", (64, 48), 3).save(misnamed, format="GIF")
    store = Store(tmp_path / "store" / "annotations.sqlite")
    stored = store.add_image_file(misnamed, 64, 48)
    digest = hashlib.sha256(misnamed.read_bytes()).hexdigest()[:20]
    assert stored == f"images/{digest}.gif"  # content-addressed as before, named by what PIL detects
    assert Image.open(store.image_path(stored)).format == "GIF"
    assert store.add_image_file(misnamed, 64, 48) == stored
    jpeg = exif_jpeg(tmp_path / "photo.jpeg")
    assert store.add_image_file(jpeg, 600, 1200).endswith(".jpg")


# --- the dataset view refuses what the single view refuses ------------------------------------


def test_the_dataset_view_refuses_a_truncated_png_like_the_single_view(tmp_path, workspace, embedded_info):
    from tests.test_lab import FixedContext
    from ui.lab import analyse_dataset, uploaded_screenshot

    broken = truncated_png(tmp_path / "broken.png", FIGURE)
    with pytest.raises(ImageInputError) as single:
        uploaded_screenshot(str(broken), embedded_info.settings)
    _, summary = analyse_dataset(FixedContext(workspace, embedded_info), [str(FIGURE), str(broken)], "max520")
    assert "1 image(s)" in summary  # old code: 2, the broken file counted as usable
    assert "Skipped" in summary and html.escape(str(single.value)) in summary


def test_a_400_to_1_strip_is_refused_naming_the_file(tmp_path, workspace, embedded_info, encoder):
    from tests.test_lab import FixedContext
    from ui.lab import analyse_dataset, uploaded_screenshot

    Image.new("RGB", (4000, 10), "white").save(tmp_path / "banner.png")
    strip = tmp_path / "banner.png"
    with pytest.raises(ImageInputError) as loader:
        open_screenshot(strip, where="data.jsonl, line 7")
    message = str(loader.value)
    assert message.startswith("data.jsonl, line 7: banner.png is 4000×10")
    assert "aspect ratio 400:1" in message and "Crop it" in message
    with pytest.raises(ImageInputError) as single:
        uploaded_screenshot(str(strip), embedded_info.settings)
    _, summary = analyse_dataset(FixedContext(workspace, embedded_info), [str(FIGURE), str(strip)], "max520")
    assert "1 image(s)" in summary and html.escape(str(single.value)) in summary
    # the encoder (trainer, Inspector, audit) names the record and the file, and says to crop
    with pytest.raises(ValueError, match=r"data.jsonl, line 1, image 1 \(banner.png\): banner.png is 4000×10.*Crop"):
        encoder.encode(one_image_sample(tmp_path, "banner.png"))


def test_the_import_refuses_a_strip_naming_the_record_and_file(tmp_path):
    from authoring.importer import ImportOptions, ImportRefused, import_source
    from authoring.store import Store

    source = tmp_path / "src"
    source.mkdir()
    Image.new("RGB", (10, 4000), "white").save(source / "tall.png")
    steps = [{"image": "tall.png", "thinking": "Scroll the long page to its end.",
              "action": {"action": "click", "coordinate": [500, 500]}}]
    (source / "trajectories.json").write_text(json.dumps([{"id": "t1", "task": "Read it", "steps": steps}]))
    with pytest.raises(ImportRefused, match=r"step 1.*tall.png is 10×4000.*aspect ratio 400:1.*Crop"):
        import_source(Store(tmp_path / "store" / "a.sqlite"), source, ImportOptions("folder", "norm1000"))


# --- what a peer sees -------------------------------------------------------------------------


def test_a_peer_recipe_warns_about_an_exif_rotated_or_16_bit_file(tmp_path, encoder):
    from lora_core.data.images import image_warnings

    exif_jpeg(tmp_path / "phone.jpg")
    sample = one_image_sample(tmp_path, "phone.jpg")
    assert not [n for n in encoder.encode(sample).notes if "orientation" in n]  # native applies it: nothing to say
    notes = encoder.with_recipe("llamafactory").encode(sample).notes
    rotated = [n for n in notes if "EXIF orientation 6" in n]
    assert rotated and "phone.jpg" in rotated[0] and "LLaMA-Factory" in rotated[0]
    assert "600×1200" in rotated[0] and "raw 1200×600" in rotated[0]
    sixteen_bit_png(tmp_path / "scan.png")
    notes = encoder.with_recipe("ms-swift").encode(one_image_sample(tmp_path, "scan.png")).notes
    assert any("scan.png is a 16-bit image" in n and "almost white" in n and "ms-swift" in n for n in notes)
    assert image_warnings(FIGURE) == []
