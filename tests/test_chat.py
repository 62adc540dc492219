import pytest

from lora_core.chat import (
    IGNORE_INDEX,
    IM_END_ID,
    build_labels,
    count_trained,
    encode_sample,
    find_assistant_turns,
    render_chat,
)
from tests.conftest import load_fixture

CONVERSATIONS = load_fixture("qwen3vl_masks_public.json")


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=lambda c: c["name"])
def test_rendering_equals_fixture(conv, tokenizer, embedded_info):
    rendered = render_chat(conv["messages"], tokenizer, conv["image_sizes"], embedded_info.settings,
                           embedded_info.chat_template)
    assert rendered.text == conv["text"]
    assert rendered.input_ids == conv["input_ids"]


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=lambda c: c["name"])
def test_labels_equal_fixture(conv):
    assert build_labels(conv["input_ids"], "last") == conv["labels_last"]
    assert build_labels(conv["input_ids"], "all") == conv["labels_all"]
    assert count_trained(build_labels(conv["input_ids"], "last")) == conv["trained_last"]
    assert count_trained(build_labels(conv["input_ids"], "all")) == conv["trained_all"]


def test_trained_span_runs_through_im_end_and_newline():
    ids = CONVERSATIONS[0]["input_ids"]
    labels = build_labels(ids, "last")
    trained = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
    last_turn = find_assistant_turns(ids)[-1]
    assert trained[0] == last_turn.ans_start
    assert ids[trained[-2]] == IM_END_ID and ids[trained[-1]] == 198


def test_overrides_win_over_the_mode():
    ids = CONVERSATIONS[2]["input_ids"]
    turns = find_assistant_turns(ids)
    assert len(turns) == 4
    only_first = build_labels(ids, "last", [True, None, None, False])
    assert only_first[turns[0].ans_start] == ids[turns[0].ans_start]
    assert only_first[turns[3].ans_start] == IGNORE_INDEX
    assert count_trained(only_first) == turns[0].label_end - turns[0].ans_start
    none_trained = build_labels(ids, "all", [False] * 4)
    assert count_trained(none_trained) == 0


def test_image_pads_follow_geometry(tokenizer, embedded_info):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "ok"}]
    small = render_chat(messages, tokenizer, [(1080, 2400)], embedded_info.settings.with_(max_dim=520),
                        embedded_info.chat_template)
    assert small.image_spans[0][1] - small.image_spans[0][0] == 112
    with pytest.raises(ValueError, match="1 image"):
        render_chat(messages, tokenizer, [], embedded_info.settings, embedded_info.chat_template)


def test_truncation_before_labels_drops_a_cut_answer(tokenizer, embedded_info):
    conv = CONVERSATIONS[0]
    ans_end = find_assistant_turns(conv["input_ids"])[-1].ans_end
    whole = encode_sample(conv["messages"], tokenizer, conv["image_sizes"], embedded_info.settings,
                          embedded_info.chat_template, "last", max_length=ans_end + 2)
    assert whole.trained_tokens == conv["trained_last"] and not whole.truncated
    cut = encode_sample(conv["messages"], tokenizer, conv["image_sizes"], embedded_info.settings,
                        embedded_info.chat_template, "all", max_length=ans_end - 5)
    assert cut.truncated
    # the final answer lost its <|im_end|>: only the complete history answer is still trained
    first = find_assistant_turns(conv["input_ids"])[0]
    assert cut.trained_tokens == first.label_end - first.ans_start


def test_cut_inside_image_is_detected(tokenizer, embedded_info):
    conv = CONVERSATIONS[0]
    rendered = render_chat(conv["messages"], tokenizer, conv["image_sizes"], embedded_info.settings,
                           embedded_info.chat_template)
    start, end = rendered.image_spans[0]
    cut = encode_sample(conv["messages"], tokenizer, conv["image_sizes"], embedded_info.settings,
                        embedded_info.chat_template, "last", max_length=start + 3)
    assert cut.cut_inside_image() == 0
