"""The Mask Inspector's core: labels equal the fixtures through the inspector's path, truncation verdicts,
pitfalls, mode changes, history cost, dataset reading and the token view's HTML. No browser, no server."""
import json
import zipfile

import pytest

from lora_core.qwen.chat import IGNORE_INDEX, build_labels, render_chat
from lora_core.qwen.geometry import geometry
from lora_core.data.datasets import extract_dataset_zip, parse_dataset_text, read_dataset
from lora_core.analysis.history import sample_layout, without_images
from lora_core.analysis.inspection import inspect_sample
from lora_core.analysis.masking import DEFAULT_MAX_LENGTH, TARGET, analyse_sample
from lora_core.analysis.token_view import token_texts
from lora_core.data.samples import Sample, SampleFormatError, normalize_record
from tests.conftest import PEER_DATA, load_fixture
from tests.images import plain_image

CONVERSATIONS = load_fixture("qwen3vl_masks_public.json")
MLLM_DEMO = PEER_DATA / "llamafactory" / "mllm_demo.json"
MAI_UI = PEER_DATA / "mai-ui" / "messages"


@pytest.fixture(scope="module")
def model(encoder):
    """The embedded checkpoint's native encoder under a label mode and max_length (the seed's 6200 by default)."""

    def under(mode="last", max_length=DEFAULT_MAX_LENGTH):
        return encoder.with_options(mode=mode, max_length=max_length)

    return under


def fixture_sample(conv, folder) -> Sample:
    """The fixture conversation as a native record whose image items point at blank files of the fixture's sizes."""
    messages = json.loads(json.dumps(conv["messages"]))
    sizes = iter(conv["image_sizes"])
    for message in messages:
        for item in message["content"] if isinstance(message["content"], list) else []:
            if item["type"] == "image":
                width, height = next(sizes)
                name = f"{conv['name']}-{width}x{height}.png"
                plain_image(folder / name, width, height)
                item["image"] = name
    return normalize_record({"messages": messages}, folder)


def chat(*turns, loss=None):
    """Messages from (role, text) pairs; `loss` maps a message index to its loss flag."""
    messages = [{"role": role, "content": text} for role, text in turns]
    for index, flag in (loss or {}).items():
        messages[index]["loss"] = flag
    return messages


def with_image(folder, name="screen.png", size=(1080, 2400)) -> Sample:
    """system, task, two history answers, the current screenshot, the target."""
    plain_image(folder / name, *size)
    messages = chat(("system", "You are a GUI agent."), ("user", "Open the Sales folder"),
                    ("assistant", "<thinking>Open the app.</thinking><tool_call>{\"name\": \"mobile_use\", "
                                  "\"arguments\": {\"action\": \"open\", \"text\": \"CloudDrive\"}}</tool_call>"),
                    ("assistant", "<thinking>Scroll.</thinking><tool_call>{\"name\": \"mobile_use\", \"arguments\": "
                                  "{\"action\": \"swipe\", \"direction\": \"up\"}}</tool_call>"))
    messages.append({"role": "user", "content": [{"type": "image", "image": name},
                                                 {"type": "text", "text": "Current screenshot"}]})
    messages.append({"role": "assistant", "content": "<thinking>Tap Sales.</thinking><tool_call>{\"name\": "
                     "\"mobile_use\", \"arguments\": {\"action\": \"click\", \"coordinate\": [500, 210]}}</tool_call>"})
    return normalize_record({"messages": messages}, folder)


def codes(findings):
    return {finding.code for finding in findings}


# ---------------------------------------------------------------- labels equal the fixtures


@pytest.mark.parametrize("conv", CONVERSATIONS, ids=lambda c: c["name"])
@pytest.mark.parametrize("mode", ["last", "all"])
def test_inspector_labels_equal_the_fixture(conv, mode, model, special, tmp_path):
    ins = inspect_sample(fixture_sample(conv, tmp_path), model(mode=mode, max_length=None))
    a = ins.analysis
    assert a.encoded.input_ids == conv["input_ids"]
    assert a.encoded.labels == conv[f"labels_{mode}"]
    assert ins.counts["trained"] == conv[f"trained_{mode}"]
    # the target colour is on exactly the trained tokens
    assert [c == TARGET for c in ins.classes] == [label != IGNORE_INDEX for label in conv[f"labels_{mode}"]]
    assert ins.counts["image"] == conv["input_ids"].count(special.image_pad)
    assert ins.counts["total"] == ins.counts["trained"] + ins.counts["masked"]


def test_token_texts_rebuild_the_rendered_text(model, tokenizer, special, tmp_path):
    conv = CONVERSATIONS[0]  # Chinese text included
    ins = inspect_sample(fixture_sample(conv, tmp_path), model(max_length=None))
    rendered = ins.analysis.encoded.rendered
    pieces = []
    for index, text in enumerate(ins.texts):
        if ins.analysis.ids[index] == special.image_pad:
            if any(start == index for start, _ in rendered.image_spans):
                pieces.append("<|image_pad|>")
        elif index not in ins.partial:
            pieces.append(text)
    assert "".join(pieces) == rendered.text
    # a character split over several byte-level tokens shows on the token that completes it
    ids = tokenizer("x 𠀀 y", add_special_tokens=False)["input_ids"]
    texts, partial = token_texts(tokenizer, ids, special.image_pad)
    assert partial and "".join(t for i, t in enumerate(texts) if i not in partial) == "x 𠀀 y"


# ---------------------------------------------------------------- truncation


def test_target_cut_in_part_trains_nothing_in_mode_last(model, tmp_path):
    sample = with_image(tmp_path)
    full = analyse_sample(sample, model(max_length=None))
    last = full.turns[-1].turn
    cut = last.ans_start + 5
    a = analyse_sample(sample, model(mode="last", max_length=cut))
    assert a.cut == cut and a.truncated_target and a.zero_trained
    found = {f.code: f.text for f in a.verdicts}
    assert "cut after 5 of its" in found["target_cut"]
    assert "trains on nothing" in found["zero_trained"]
    assert "trains_history_instead" not in found
    assert a.turns[-1].status(a.cut) == "lost to the cut"


def test_target_cut_whole_makes_a_history_answer_the_target(model, tmp_path):
    sample = with_image(tmp_path)
    full = analyse_sample(sample, model(max_length=None))
    image_start, image_end = full.encoded.rendered.image_spans[0]
    a = analyse_sample(sample, model(mode="last", max_length=image_end + 3))  # cut in the current user turn
    assert a.truncated_target and not a.zero_trained and a.trains_history_instead
    second = a.turns[1]
    assert a.trained_tokens == second.trained == second.turn.label_end - second.turn.ans_start
    found = {f.code: f.text for f in a.verdicts}
    assert "entirely after the cut" in found["target_cut"]
    assert "answer 2 (a history answer" in found["trains_history_instead"]
    # in mode all both history answers were picked anyway: nothing trains "instead", the target is still lost
    everything = analyse_sample(sample, model(mode="all", max_length=image_end + 3))
    assert everything.truncated_target and not everything.trains_history_instead
    assert everything.trained_tokens == sum(t.trained_full for t in everything.turns[:2])


def test_cut_inside_an_image_says_the_sample_fails(model, tmp_path):
    sample = with_image(tmp_path)
    full = analyse_sample(sample, model(max_length=None))
    start, end = full.encoded.rendered.image_spans[0]
    a = analyse_sample(sample, model(max_length=start + 10))
    assert a.cut_inside_image == 0
    sentence = {f.code: f.text for f in a.verdicts}["cut_inside_image"]
    assert f"10 of its {end - start} pads" in sentence and "fails" in sentence


def test_cut_between_im_end_and_newline_keeps_most_of_the_answer(model, tmp_path):
    sample = with_image(tmp_path)
    full = analyse_sample(sample, model(max_length=None))
    last = full.turns[-1]
    a = analyse_sample(sample, model(max_length=last.turn.ans_end + 1))
    assert a.trained_tokens == last.trained_full - 1 and not a.zero_trained
    assert "keeps only" in {f.code: f.text for f in a.verdicts}["target_cut"]


def test_a_sample_that_fits_says_so(model, tmp_path):
    a = analyse_sample(with_image(tmp_path), model(max_length=6200))
    assert a.cut is None and not a.truncated_target
    assert {"trains", "fits"} <= codes(a.verdicts)
    assert not [f for f in a.findings if f.level in ("error", "warn")]


# ---------------------------------------------------------------- pitfalls


def text_sample(messages) -> Sample:
    return Sample(messages, [], "native")


def test_pitfall_literal_im_end_in_an_answer(model, special):
    a = analyse_sample(text_sample(chat(("user", "hi"), ("assistant", "done<|im_end|> and more"))), model())
    assert "literal_im_end" in codes(a.pitfalls)
    # the scan stops at the literal token: "and more" is not trained
    turn = a.turns[-1].turn
    assert a.ids[turn.ans_end] == special.im_end and a.trained_tokens == turn.label_end - turn.ans_start
    assert a.trained_tokens < len(a.ids) - turn.ans_start


def test_pitfall_no_assistant_turn(model):
    a = analyse_sample(text_sample(chat(("system", "s"), ("user", "hello"))), model())
    assert {"no_assistant_turn", "last_message_user"} <= codes(a.pitfalls)
    assert a.zero_trained


def test_pitfall_empty_target(model):
    a = analyse_sample(text_sample(chat(("user", "hello"), ("assistant", "  "))), model())
    assert "empty_target" in codes(a.pitfalls)


def test_pitfall_last_message_is_a_user_turn(model):
    a = analyse_sample(text_sample(chat(("user", "a"), ("assistant", "b"), ("user", "c"))), model())
    sentence = {f.code: f.text for f in a.pitfalls}["last_message_user"]
    assert "answer 1" in sentence and a.trained_tokens > 0


def test_pitfall_answer_longer_than_max_length(model):
    a = analyse_sample(text_sample(chat(("user", "count"), ("assistant", " ".join(["word"] * 80)))),
                       model(max_length=40))
    assert "answer_too_long" in codes(a.pitfalls) and a.zero_trained


def test_pitfall_leading_newline_merges_with_the_template(model):
    a = analyse_sample(text_sample(chat(("user", "a"), ("assistant", "\nanswer"))), model())
    assert "merged_newline" in codes(a.pitfalls)


def test_pitfall_image_inside_a_trained_answer(model, tmp_path):
    plain_image(tmp_path / "s.png", 64, 64)
    record = {"messages": [{"role": "user", "content": "draw"},
                           {"role": "assistant", "content": [{"type": "image", "image": "s.png"}]}]}
    a = analyse_sample(normalize_record(record, tmp_path), model())
    assert "image_in_answer" in codes(a.pitfalls)


def test_ms_swift_image_dicts_are_read(tmp_path):
    record = {"messages": [{"role": "user", "content": "<image>hi"}, {"role": "assistant", "content": "ok"}],
              "images": [{"path": "a.png"}]}
    sample = parse_dataset_text(json.dumps(record), tmp_path, "x").sample(0)
    assert sample.images == [tmp_path.resolve() / "a.png"]


def test_non_string_image_reference_gets_a_sentence(tmp_path):
    record = {"messages": [{"role": "user", "content": [{"type": "image", "image": 5}]},
                           {"role": "assistant", "content": "x"}]}
    with pytest.raises(SampleFormatError, match="image reference"):
        parse_dataset_text(json.dumps(record), tmp_path, "x").sample(0)


def test_literal_image_token_in_text_is_refused_with_a_sentence(model):
    with pytest.raises(SampleFormatError, match="literal text <\\|image_pad\\|>"):
        analyse_sample(text_sample(chat(("user", "see <|image_pad|>"), ("assistant", "ok"))), model())


def test_mai_ui_message_list_uses_the_placeholder_size(model):
    dataset = read_dataset(MAI_UI / "test_build_messages_with_multiple_history.json")
    sample = dataset.sample(0)
    a = analyse_sample(sample, model(), placeholder_size=(1080, 2400))
    assert dataset.form == "message list" and sample.source_format == "mai-ui"
    assert a.placeholder_images == len(sample.images) > 0
    assert "1080×2400" in {f.code: f.text for f in a.verdicts}["placeholder_images"]
    assert "last_message_user" in codes(a.pitfalls)


# ---------------------------------------------------------------- modes and overrides


def test_switching_mode_marks_the_changed_tokens(model, tmp_path):
    sample = with_image(tmp_path)
    last = inspect_sample(sample, model(mode="last"))
    everything = inspect_sample(sample, model(mode="all"), compare_mode="last")
    assert everything.counts["trained"] > last.counts["trained"]
    assert everything.counts["changed"] == everything.counts["trained"] - last.counts["trained"]
    history = everything.analysis.turns[0].turn
    assert set(range(history.ans_start, history.label_end)) <= everything.changed


def test_loss_false_wins_over_mode_all(model, special):
    messages = chat(("user", "a"), ("assistant", "wrong"), ("user", "b"), ("assistant", "right"), loss={1: False})
    a = analyse_sample(text_sample(messages), model(mode="all"))
    assert a.turns[0].trained == 0 and a.turns[0].status(a.cut) == "masked: loss false"
    assert a.turns[1].trained > 0
    assert a.encoded.labels == build_labels(a.ids, special, "all", [False, None])


# ---------------------------------------------------------------- history cost


def test_history_variants_are_re_rendered_lengths(model, tokenizer, special, embedded_info, tmp_path):
    settings, template = embedded_info.settings, embedded_info.chat_template

    def geometries(sizes):  # the checkpoint's own sizing, computed apart from the encoder
        return [geometry(width, height, settings) for width, height in sizes]

    plain_image(tmp_path / "old.png", 1080, 2400)
    sample = with_image(tmp_path)
    # put an older screenshot before the first history answer
    sample.messages.insert(2, {"role": "user", "content": [{"type": "image"}]})
    sample.images.insert(0, tmp_path / "old.png")
    ins = inspect_sample(sample, model())
    cost = ins.history
    assert cost.history_images == 1 and cost.history_steps == 2
    parts = dict(cost.parts)
    assert sum(parts.values()) == ins.counts["total"]
    start, end = ins.analysis.encoded.rendered.image_spans[0]
    assert parts["history screenshots"] == end - start
    sizes = sample.image_sizes()
    fewer, fewer_sizes = without_images(sample.messages, sizes, {0})
    expected = len(render_chat(fewer, tokenizer, geometries(fewer_sizes), special, template).input_ids)
    assert cost.screenshot_variants[0].length == expected
    assert cost.screenshot_variants[0].saved == ins.counts["total"] - expected
    no_history = [v for v in cost.step_variants if v.kept == 0][0]
    layout = sample_layout(sample.messages)
    trimmed = sample.messages[: layout.head_end] + sample.messages[layout.current_start:]
    assert no_history.length == len(render_chat(trimmed, tokenizer, geometries(sizes[1:]), special, template).input_ids)


def test_history_cost_of_mllm_demo(model):
    dataset = read_dataset(MLLM_DEMO)
    for index in range(len(dataset)):
        ins = inspect_sample(dataset.sample(index), model())
        assert sum(tokens for _, tokens in ins.history.parts) == ins.counts["total"]


# ---------------------------------------------------------------- datasets


def test_mllm_demo_reads_as_a_json_list(model):
    dataset = read_dataset(MLLM_DEMO)
    assert dataset.form == "JSON list" and len(dataset) == 6 and dataset.errors == 0
    sample = dataset.sample(0)
    assert sample.source_format == "llamafactory" and len(sample.images) == 2
    ins = inspect_sample(sample, model(mode="all"))
    assert ins.counts["trained"] > inspect_sample(sample, model(mode="last")).counts["trained"] > 0


def test_jsonl_with_a_bad_line_names_it(tmp_path):
    good = json.dumps({"messages": chat(("user", "a"), ("assistant", "b"))})
    path = tmp_path / "data.jsonl"
    path.write_text(f"{good}\n{{\"messages\": [oops\n\n{good}\n")
    dataset = read_dataset(path)
    assert dataset.form == "JSONL" and len(dataset) == 3 and dataset.errors == 1
    assert dataset.entries[2].where == "line 4"
    with pytest.raises(SampleFormatError, match="line 2: not valid JSON"):
        dataset.sample(1)
    assert dataset.sample(2).messages[1]["content"] == "b"


def test_broken_json_names_line_and_column(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[\n  {"messages": [\n    {"role": "user" "content": "x"}\n  ]}\n]\n')
    with pytest.raises(SampleFormatError, match="line 3, column"):
        read_dataset(path)


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("[]", "empty JSON list"),
    ('"just a string"', "not an object with 'messages'"),
    ('{"messages": []}', None),
])
def test_odd_json_gets_a_sentence(tmp_path, text, message):
    if message is None:
        with pytest.raises(SampleFormatError, match="no non-empty 'messages'"):
            parse_dataset_text(text, tmp_path, "pasted JSON").sample(0)
    else:
        with pytest.raises(SampleFormatError, match=message):
            parse_dataset_text(text, tmp_path, "pasted JSON")


def test_image_paths_stay_inside_the_dataset_folder(tmp_path):
    record = {"messages": [{"role": "user", "content": [{"type": "image", "image": "../outside.png"}]},
                           {"role": "assistant", "content": "ok"}]}
    dataset = parse_dataset_text(json.dumps(record), tmp_path, "pasted JSON")
    with pytest.raises(SampleFormatError, match="outside"):
        dataset.sample(0)


def test_missing_image_is_a_sentence(model, tmp_path):
    record = {"messages": [{"role": "user", "content": "<image>what?"}, {"role": "assistant", "content": "x"}],
              "images": ["gone.png"]}
    sample = parse_dataset_text(json.dumps(record), tmp_path, "pasted JSON").sample(0)
    with pytest.raises(ValueError, match="gone.png does not exist"):
        analyse_sample(sample, model())


def test_sharegpt_conversations_are_read(tmp_path):
    record = {"conversations": [{"from": "human", "value": "<image>hi"}, {"from": "gpt", "value": "hello"}],
              "system": "be brief", "images": ["a.png"]}
    sample = parse_dataset_text(json.dumps(record), tmp_path, "x").sample(0)
    assert [m["role"] for m in sample.messages] == ["system", "user", "assistant"]
    assert sample.source_format == "llamafactory"


def test_zip_with_dataset_and_images(tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(MLLM_DEMO, "mllm/mllm_demo.json")
        zf.write(PEER_DATA / "llamafactory" / "dataset_info.json", "mllm/dataset_info.json")
        for image in sorted((PEER_DATA / "llamafactory" / "mllm_demo_data").iterdir()):
            zf.write(image, f"mllm/mllm_demo_data/{image.name}")
    found = extract_dataset_zip(archive, tmp_path / "out")
    assert [p.name for p in found] == ["mllm_demo.json"]
    sample = read_dataset(found[0]).sample(0)
    assert all(path.exists() for path in sample.images)


def test_zip_escaping_its_folder_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.jsonl", "{}")
    with pytest.raises(SampleFormatError, match="outside its folder"):
        extract_dataset_zip(archive, tmp_path / "out")
    assert not (tmp_path / "escape.jsonl").exists()


def test_demo_trajectories_slice_into_samples(workspace):
    from lora_core.data.datasets import demo_dataset
    from demo import ensure_demo_data

    demo = ensure_demo_data(workspace)
    dataset = demo_dataset(demo, max_images=2)
    assert len(dataset) == sum(len(t.steps) for t in demo.trajectories)
    sample = dataset.sample(2)
    assert len(sample.images) == 2 and all(path.exists() for path in sample.images)


# ---------------------------------------------------------------- the token view


def test_token_view_has_one_chip_per_image_and_no_pad_spans(model, tmp_path):
    from ui.inspector import counts_html, rule_html, tokens_html

    ins = inspect_sample(with_image(tmp_path), model(mode="all"), compare_mode="last")
    page = tokens_html(ins)
    start, end = ins.analysis.encoded.rendered.image_spans[0]
    assert page.count('class="mi-chip') == 1 and f'data-n="{end - start}"' in page
    assert page.count('class="ki') == 0  # pads are drawn by the browser only when the chip is expanded
    assert page.count('class="kt') == ins.counts["trained"]
    assert page.count(" c\"") + page.count(" c m\"") == ins.counts["changed"]
    assert "mi-cut" not in page
    counts = counts_html(ins)
    assert f'data-count="trained">{ins.counts["trained"]:,}<' in counts
    side = rule_html(ins)
    for turn in ins.analysis.turns:
        assert f'data-target="{turn.turn.ans_start}"' in side


def test_token_view_marks_the_cut(model, tmp_path):
    from ui.inspector import tokens_html

    sample = with_image(tmp_path)
    start, _ = analyse_sample(sample, model(max_length=None)).encoded.rendered.image_spans[0]
    page = tokens_html(inspect_sample(sample, model(max_length=start + 10)))
    assert page.count('id="mi-cut"') == 1 and "mi-cutin" in page and "✂ 10 kept" in page


def test_preview_handler_turns_errors_into_a_sentence(workspace, embedded_path):
    from ui.context import AppContext
    from ui.inspector import pasted_source, preview

    ctx = AppContext(workspace)
    source = pasted_source(ctx, '{"messages": [{"role": "user", "content": [{"type": "image", "image": "nope.png"}]},'
                                ' {"role": "assistant", "content": "x"}]}')
    with pytest.warns(UserWarning):
        counts, tokens, side, history, shown = preview(ctx, source, 0, "last", 6200, "max520", 1080, 2400, None)
    assert "nope.png does not exist" in counts and shown is None
    with pytest.raises(SampleFormatError, match="line 1, column"):
        pasted_source(ctx, '{"messages": [')


def test_server_paths_only_for_a_private_app():
    from types import SimpleNamespace

    from ui.inspector import path_source

    private = SimpleNamespace(demo_mode=False, exposed=False)
    assert len(path_source(private, str(MLLM_DEMO)).dataset) == 6
    for public in (SimpleNamespace(demo_mode=True, exposed=False), SimpleNamespace(demo_mode=False, exposed=True)):
        with pytest.raises(ValueError, match="does not read paths"):
            path_source(public, str(MLLM_DEMO))
