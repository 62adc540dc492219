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


def test_gpu_idle_counts_the_kernels_union_and_names_what_the_host_did_in_each_long_gap():
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    from lora_core.training.callbacks import gpu_idle

    def event(name, start, end, device=DeviceType.CPU):
        return SimpleNamespace(name=name, device_type=device, time_range=SimpleNamespace(start=start, end=end))

    kernel = DeviceType.CUDA
    events = [event("k1", 0, 100, kernel), event("k1b", 10, 20, kernel),  # nested: no time of its own
              event("k2", 50, 150, kernel),                              # overlapping: 150 us busy
              event("k3", 155, 200, kernel),                             # a 5 us gap
              event("k4", 700, 800, kernel),                             # a 500 us gap, the host in a sync
              event("ProfilerStep#1", 0, 1000), event("Optimizer.step", 180, 760),
              event("cudaStreamSynchronize", 300, 600)]
    idle = gpu_idle(events, wall_s=1e-3)
    assert idle["kernels_union_ms"] == 0.3 and idle["busy_share"] == 0.295
    assert idle["gaps_ms_by_length"] == {"0-10us": [1, 0.0], "10-100us": [0, 0.0], "100-1000us": [1, 0.5],
                                         ">=1000us": [0, 0.0]}
    assert idle["idle_under_host_innermost_ms"] == [("cudaStreamSynchronize", 0.5)]
    assert idle["idle_under_host_outermost_ms"] == [("Optimizer.step", 0.5)]
