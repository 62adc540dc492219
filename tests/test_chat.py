import pytest

from lora_core.data.samples import Sample
from lora_core.qwen.chat import IGNORE_INDEX, build_labels, count_trained, find_assistant_turns, render_chat
from lora_core.qwen.geometry import geometry
from tests.conftest import load_fixture

CONVERSATIONS = load_fixture("qwen3vl_masks_public.json")


def geometries(conv, settings):
    return [geometry(w, h, settings) for w, h in conv["image_sizes"]]


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=lambda c: c["name"])
def test_rendering_equals_fixture(conv, encoder):
    rendered = render_chat(conv["messages"], encoder.tokenizer, geometries(conv, encoder.settings), encoder.special,
                           encoder.chat_template)
    assert rendered.text == conv["text"]
    assert rendered.input_ids == conv["input_ids"]


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=lambda c: c["name"])
def test_labels_equal_fixture(conv, special):
    assert build_labels(conv["input_ids"], special, "last") == conv["labels_last"]
    assert build_labels(conv["input_ids"], special, "all") == conv["labels_all"]
    assert count_trained(build_labels(conv["input_ids"], special, "last")) == conv["trained_last"]
    assert count_trained(build_labels(conv["input_ids"], special, "all")) == conv["trained_all"]


def test_special_ids_come_from_the_tokenizer(encoder):
    special, tokenizer = encoder.special, encoder.tokenizer
    assert special.im_end == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert special.image_pad == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert special.assistant_header == tuple(tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"])
    assert special.pad == tokenizer.pad_token_id


def test_trained_span_runs_through_im_end_and_newline(special):
    ids = CONVERSATIONS[0]["input_ids"]
    labels = build_labels(ids, special, "last")
    trained = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
    last_turn = find_assistant_turns(ids, special)[-1]
    assert trained[0] == last_turn.ans_start
    assert ids[trained[-2]] == special.im_end and (ids[trained[-1]],) == special.newline


def test_overrides_win_over_the_mode(special):
    ids = CONVERSATIONS[2]["input_ids"]
    turns = find_assistant_turns(ids, special)
    assert len(turns) == 4
    only_first = build_labels(ids, special, "last", [True, None, None, False])
    assert only_first[turns[0].ans_start] == ids[turns[0].ans_start]
    assert only_first[turns[3].ans_start] == IGNORE_INDEX
    assert count_trained(only_first) == turns[0].label_end - turns[0].ans_start
    assert count_trained(build_labels(ids, special, "all", [False] * 4)) == 0


def test_image_pads_follow_the_recipe_geometry(encoder):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "ok"}]
    small = encoder.with_options(max_dim=520)
    rendered = small.render(Sample(messages, [None]), [small.geometry(1080, 2400)])
    assert rendered.image_spans[0][1] - rendered.image_spans[0][0] == 112
    with pytest.raises(ValueError, match="1 image"):
        render_chat(messages, encoder.tokenizer, [], encoder.special, encoder.chat_template)


def fixture_sample(conv) -> Sample:
    return Sample(conv["messages"], [None] * len(conv["image_sizes"]))


def test_truncation_before_labels_drops_a_cut_answer(encoder):
    conv = CONVERSATIONS[0]
    ans_end = find_assistant_turns(conv["input_ids"], encoder.special)[-1].ans_end
    whole = encoder.with_options(max_length=ans_end + 2).encode(fixture_sample(conv), sizes=conv["image_sizes"])
    assert whole.trained_tokens == conv["trained_last"] and not whole.truncated
    cut = encoder.with_options(mode="all", max_length=ans_end - 5).encode(fixture_sample(conv), sizes=conv["image_sizes"])
    assert cut.truncated and cut.cut == ans_end - 5
    # the final answer lost its <|im_end|>: only the complete history answer is still trained
    first = find_assistant_turns(conv["input_ids"], encoder.special)[0]
    assert cut.trained_tokens == first.label_end - first.ans_start


def test_cut_inside_image_is_detected(encoder):
    conv = CONVERSATIONS[0]
    full = encoder.encode(fixture_sample(conv), sizes=conv["image_sizes"])
    start, end = full.image_spans[0]
    cut = encoder.with_options(max_length=start + 3).encode(fixture_sample(conv), sizes=conv["image_sizes"])
    assert cut.cut_inside_image() == 0
    assert cut.image_pad_counts == [3] and cut.full_image_pad_counts == full.image_pad_counts
