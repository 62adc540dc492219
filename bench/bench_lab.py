"""Resolution Lab benchmarks: geometry throughput, the model view, the Lab's render, cold start of the app.

    python bench/bench_lab.py
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

from common import machine, median_seconds, report


def bench_geometry() -> None:
    from lora_core.qwen.geometry import ImageSettings, geometry
    from lora_core.qwen.recipes import NativeRecipe

    settings = ImageSettings(max_dim=1024)
    recipe = NativeRecipe(ImageSettings(), max_dim=1024)  # what the encoder and the Lab's presets call
    sizes = [(320 + (i * 7) % 3500, 480 + (i * 13) % 3000) for i in range(100_000)]

    def run():
        for width, height in sizes:
            geometry(width, height, settings).visual_tokens

    seconds, runs = median_seconds(run, repeats=5)
    report("geometry() for 100,000 sizes", seconds, runs=runs)

    def run_recipe():
        for width, height in sizes:
            recipe.geometry(width, height).visual_tokens

    seconds, runs = median_seconds(run_recipe, repeats=5)
    report("native recipe geometry for 100,000 sizes", seconds, runs=runs)


def bench_model_view(workspace: Path) -> None:
    """Encoder.model_view (the image processor's pixels, un-normalised) of a 1080×2400 screenshot per setting."""
    from lora_core.analysis.resolution import lab_settings
    from lora_core.data.images import open_screenshot
    from ui.context import AppContext

    ctx = AppContext(workspace)
    encoder = ctx.encoder()
    image = open_screenshot(ctx.demo.screen("files_root").path)
    for named in lab_settings(encoder.checkpoint_settings):
        geom = named.geometry(*image.size)
        seconds, runs = median_seconds(lambda: encoder.model_view(image, geom), repeats=5)
        report(f"model view at {named.key} ({geom.resized_width}×{geom.resized_height}, {geom.visual_tokens:,} tokens)",
               seconds, runs=runs)


def bench_lab_render(workspace: Path) -> None:
    """Server time of the Lab's handler for a 1080×2400 screenshot at three settings (520, 768, 1024)."""
    from ui.context import AppContext
    from ui.lab import DEFAULT_PRESETS, cached_model_view, demo_screenshot, render_lab

    ctx = AppContext(workspace)
    ctx.model_info()
    shot = demo_screenshot(ctx, "files_root")
    shot.box, shot.point = (60, 420, 140, 500), (100, 460)

    def run():
        render_lab(ctx, shot, DEFAULT_PRESETS, False, None, None, None, 6200, True, True)

    seconds, runs = median_seconds(run, repeats=9, warmup=2)
    report("Lab render, 1080×2400 at 3 settings (element + point marked)", seconds, "≤ 250 ms", runs)

    def run_first():
        """A screenshot the Lab has not drawn yet: the processor makes each setting's pixels."""
        cached_model_view.cache_clear()
        run()

    seconds, runs = median_seconds(run_first, repeats=5, warmup=1)
    report("  … first render of a screenshot (model views not cached yet)", seconds, None, runs)

    def run_and_encode():
        """The same, plus the PNG encoding gradio does before sending the 4 images."""
        original, _, _, *views = render_lab(ctx, shot, DEFAULT_PRESETS, False, None, None, None, 6200, True, True)
        for picture in [original] + [view["value"] for view in views if view.get("value") is not None]:
            picture.save(io.BytesIO(), format="png")

    seconds, runs = median_seconds(run_and_encode, repeats=9, warmup=2)
    report("  … including PNG encoding of the screenshot and 3 views", seconds, None, runs)


def bench_cold_start(repeats: int = 5) -> None:
    """`python app.py` to its first HTTP 200, new and existing workspace: bench/bench_startup.py."""
    import bench_startup

    bench_startup.main(["--repeats", str(repeats)])


if __name__ == "__main__":
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as folder:
        bench_geometry()
        bench_model_view(Path(folder))
        bench_lab_render(Path(folder))
    bench_cold_start()
