"""training.sync_free: a packed training step's forward and backward run no operator that makes a CUDA stream
wait for the host, and train what transformers' own methods train.

There is no GPU here, so the test watches the operators themselves (a dispatch mode on the CPU): on CUDA these
read a device value back on the host (`.item()`, a tensor in a condition, nonzero, boolean-mask indexing)."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from lora_core.training import sync_free
from lora_core.training.failures import RunFailure
from tests.test_packing import lora_gradients, packing_setup, trainer_for

READS_BACK = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default",
              "aten.equal.default", "aten.is_nonzero.default", "aten._unique2.default",
              "aten.unique_consecutive.default", "aten.repeat_interleave.Tensor"}


class HostReads(TorchDispatchMode):
    """Records the operators that would stop the host for the GPU, by name, and the tensor methods that copy to
    the host without an operator (`tolist`, `numpy`). Tensors in `on_host`, and those computed from them alone,
    would stay on the host: reading them costs nothing."""

    def __init__(self, on_host=()):
        super().__init__()
        self.seen: list[str] = []  # operators
        self.copies: list[str] = []  # tensor methods
        self.host_tensors = list(on_host)  # kept alive, so that their ids stay theirs
        self.on_host = {id(tensor) for tensor in on_host}
        self.methods = {}

    def __enter__(self):
        for name in ("tolist", "numpy"):
            method = self.methods[name] = getattr(torch.Tensor, name)

            def watched(tensor, *args, _name=name, _method=method, **kwargs):
                if id(tensor) not in self.on_host:
                    self.copies.append(f"Tensor.{_name}")
                return _method(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, watched)
        return super().__enter__()

    def __exit__(self, *exc):
        for name, method in self.methods.items():
            setattr(torch.Tensor, name, method)
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        indexing = name.startswith(("aten.index.Tensor", "aten.index_put"))
        masks = args[1] if indexing and len(args) > 1 else ()
        inputs = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        host = bool(inputs) and all(id(a) in self.on_host for a in inputs)
        if not host and (name in READS_BACK or any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                                   for i in masks or ())):
            self.seen.append(name)
        output = func(*args, **(kwargs or {}))
        if host:
            made = [o for o in tree_leaves(output) if isinstance(o, torch.Tensor)]
            self.host_tensors.extend(made)
            self.on_host.update(id(o) for o in made)
        return output


@pytest.fixture(scope="module")
def packed(workspace, embedded_path):
    model, items, _, packing = packing_setup(workspace, embedded_path, samples=3, seed=1)
    return model, packing(items)["packs"][0], packing.pixel_cache.encoder


def step(model, trainer, pack):
    """compute_loss and backward on the (CPU) pack, under the watch; returns the loss, gradients, watch."""
    model.zero_grad()
    on_host = [pack[name] for name in trainer.inputs_left_on_host(pack)]
    with HostReads(on_host) as reads:
        loss = trainer.compute_loss(model, pack, num_items_in_batch=50)
        loss.backward()
    return float(loss.detach()), lora_gradients(model), reads


def assert_same_training(loss, grads, reference_loss, reference_grads):
    assert abs(loss - reference_loss) <= 1e-6 * max(1.0, abs(reference_loss))
    assert any(float(g.abs().max()) > 0 for g in reference_grads.values())
    for name, reference in reference_grads.items():
        assert torch.allclose(grads[name], reference, rtol=1e-5, atol=1e-7), name


def test_packed_step_reads_nothing_back_and_trains_what_transformers_trains(packed, tmp_path):
    """With pixels the tower runs: its own position ids still read the grid (`tolist`, once per pack); every
    read of the multimodal merge is gone. A pack served by the vision cache (the default while the tower is
    frozen) reads nothing at all."""
    from lora_core.training.vision_cache import VisionCache

    model, pack, _ = packed
    model.train()
    assert pack["image_grid_thw"].shape[0] > 0  # the deepstack path runs
    trainer = trainer_for(model, tmp_path)
    reference_loss, reference_grads, reference_reads = step(model, trainer, pack)
    assert reference_reads.seen  # the watch sees transformers' own reads: the test can fail

    assert sync_free.install(model) == ["get_placeholder_mask", "_deepstack_process"]
    loss, grads, reads = step(model, trainer, pack)
    assert reads.seen == []
    assert_same_training(loss, grads, reference_loss, reference_grads)

    cache = VisionCache(model)
    try:
        trainer.vision_cache = cache
        step(model, trainer, pack)  # fills the cache
        stripped = cache.strip_pixels(pack)
        assert trainer.inputs_left_on_host(stripped) == ("image_grid_thw",)
        assert trainer.inputs_left_on_host(pack) == ()
        loss, grads, reads = step(model, trainer, stripped)
    finally:
        cache.close()
    assert (reads.seen, reads.copies) == ([], [])
    assert_same_training(loss, grads, reference_loss, reference_grads)


def test_a_pack_without_pixels_keeps_its_grids_on_the_host(packed, tmp_path):
    model, pack, _ = packed
    trainer = trainer_for(model, tmp_path)
    sent = []
    prepare_one = trainer._prepare_input
    trainer._prepare_input = lambda data: sent.append(data) or prepare_one(data)  # what goes to the device
    trainer._prepare_inputs(pack)
    assert any(data is pack["image_grid_thw"] for data in sent)  # with pixels the grids go to the GPU
    sent.clear()
    empty = dict(pack, pixel_values=pack["pixel_values"][:0])
    prepared = trainer._prepare_inputs(empty)
    assert not any(data is empty["image_grid_thw"] for data in sent)
    assert any(data is empty["input_ids"] for data in sent)
    assert set(prepared) == set(empty) and prepared["image_grid_thw"] is empty["image_grid_thw"]


def test_a_release_with_other_method_arguments_keeps_its_own_methods():
    class Language:
        def _deepstack_process(self, states, masks):  # other names: left alone
            return states

    class Inner:
        language_model = Language()

        def get_placeholder_mask(self, ids, embeds):
            return ids

    inner = Inner()
    assert sync_free.install(inner) == []
    assert "_deepstack_process" not in vars(inner.language_model)


def test_image_tokens_that_do_not_match_the_grids_stop_the_step_with_a_sentence(packed, tmp_path):
    model, pack, encoder = packed
    image_pad, merge = encoder.special.image_pad, encoder.settings.merge_size
    assert sync_free.image_token_mismatch(pack, image_pad, merge) is None
    broken = dict(pack, input_ids=pack["input_ids"].clone())
    first_image_token = int((broken["input_ids"][0] == image_pad).nonzero()[0])
    broken["input_ids"][0, first_image_token] = 0
    problem = sync_free.image_token_mismatch(broken, image_pad, merge)
    assert problem and "image tokens" in problem and "image settings" in problem

    trainer = trainer_for(model, tmp_path)
    trainer.image_tokens = (image_pad, merge)
    with pytest.raises(RunFailure) as failure:
        trainer.training_step(model, {"packs": [broken]}, num_items_in_batch=10)
    assert failure.value.reason == "bad data"
