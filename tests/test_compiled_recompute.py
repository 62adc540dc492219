"""Compiled blocks under gradient checkpointing: the recompute must run the graph the forward pass ran."""
import threading

import pytest

torch = pytest.importorskip("torch")


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)

    def forward(self, x):
        return x + self.down(torch.nn.functional.silu(self.up(x)))


def recompute_on_another_thread(wrap) -> tuple[int, list]:
    """Graphs dynamo compiled when three compiled blocks, checkpointed from outside their compiled call (as
    transformers releases before 5.24 checkpoint), are recomputed on a thread started after another thread set
    torch's thread count to 1 (as the DataLoader's pin-memory thread does); and the input's gradient."""
    from torch._dynamo.utils import counters
    from torch.utils.checkpoint import checkpoint

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    blocks = [Block() for _ in range(3)]
    for block in blocks:
        block.compile(dynamic=True, backend="aot_eager")
    checkpoint_function = wrap(checkpoint)
    original = torch.get_num_threads()
    try:
        setter = threading.Thread(target=torch.set_num_threads, args=(1,))
        setter.start()
        setter.join()
        x = torch.randn(7, 16, requires_grad=True)
        hidden = x
        for block in blocks:
            hidden = checkpoint_function(block, hidden, use_reentrant=False)
        errors = []

        def backward():
            try:
                hidden.sum().backward()
            except Exception as error:  # surfaced by the assertion below
                errors.append(error)

        worker = threading.Thread(target=backward)
        worker.start()
        worker.join()
        assert not errors, errors
        return int(counters["stats"]["unique_graphs"]), x.grad
    finally:
        torch.set_num_threads(original)
        torch._dynamo.reset()


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="needs a thread count other than 1 to differ from")
def test_recompute_keeps_the_forward_thread_count_and_compiles_no_second_graph():
    from lora_core.training.compiled import at_thread_count

    threads = torch.get_num_threads()
    graphs_plain, gradient_plain = recompute_on_another_thread(lambda function: function)
    graphs_kept, gradient_kept = recompute_on_another_thread(lambda function: at_thread_count(function, threads))
    assert graphs_plain == 2  # dynamo recompiled the block in the backward pass: its thread-count guard failed
    assert graphs_kept == 1
    assert torch.allclose(gradient_plain, gradient_kept)


def test_only_checkpointed_compiled_blocks_are_changed(monkeypatch):
    from lora_core.training import compiled

    class Layer(torch.nn.Module):
        def __init__(self, checkpointed, compiled_call):
            super().__init__()
            self.gradient_checkpointing = checkpointed
            self._gradient_checkpointing_func = lambda function, *args, **kwargs: function(*args, **kwargs)
            self._compiled_call_impl = (lambda *args, **kwargs: None) if compiled_call else None

    layers = [Layer(True, True), Layer(False, True), Layer(True, False)]
    originals = [layer._gradient_checkpointing_func for layer in layers]
    monkeypatch.setattr(compiled, "repeated_blocks", lambda model: layers)
    monkeypatch.setattr(compiled, "checkpoints_outside_compiled_code", lambda: False)
    assert compiled.keep_thread_count_in_recompute(object()) == 0  # the checkpoint is traced into the graph
    monkeypatch.setattr(compiled, "checkpoints_outside_compiled_code", lambda: True)
    assert compiled.keep_thread_count_in_recompute(object()) == 1
    assert layers[0]._gradient_checkpointing_func is not originals[0]
    assert [layer._gradient_checkpointing_func for layer in layers[1:]] == originals[1:]
    assert layers[0]._gradient_checkpointing_func(lambda value: value + 1, 41) == 42
