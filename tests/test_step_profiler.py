"""The benchmarks' profiled window (LORA_PROFILE_AT): what it writes to profile.json."""
import json

import pytest

torch = pytest.importorskip("torch")


def test_profiled_window_names_where_the_host_spends_its_time(tmp_path):
    from lora_core.training.callbacks import StepProfiler
    from lora_core.training.run_folder import RunFolder

    profiler = StepProfiler(RunFolder(tmp_path))
    weights = torch.randn(64, 64)
    done = []
    for _ in range(StepProfiler.STEPS):
        for _ in range(5):
            weights = torch.tanh(weights @ weights)
        done.append(profiler.step_done())
    assert done == [False] * (StepProfiler.STEPS - 1) + [True]  # the window closes after its third step
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert profile["wall_3_steps_s"] > 0
    host = {name: calls for name, _, calls in profile["host_top"]}
    assert host.get("aten::mm") == 5 * StepProfiler.STEPS and host.get("aten::tanh") == 5 * StepProfiler.STEPS
    if not torch.cuda.is_available():
        assert profile["gpu_kernel_s"] == profile["kernels_only_s"] == 0 and profile["profiler_stop_s"] is not None and profile["kernel_launches"] == 0 and profile["host_syncs"] == 0
