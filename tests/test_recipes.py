"""The llamafactory and ms-swift recipes against the peers' own encodings, and their documented rules."""
import pytest
from PIL import Image

from lora_core.data.samples import normalize_record
from lora_core.qwen.chat import IGNORE_INDEX, LabelMode
from lora_core.qwen.encoder import Encoder
from lora_core.qwen.geometry import ImageSettings, geometry
from lora_core.qwen.recipes import RECIPES, RecipeError, make_recipe
from lora_core.qwen.recipes.llamafactory import LlamaFactoryRecipe, infer_seqlen
from lora_core.qwen.recipes.peer_config import options_from_llamafactory_yaml, options_from_swift_command
from lora_core.qwen.recipes.swift import SwiftRecipe
from tests.conftest import load_fixture

PEER_CASES = load_fixture("peers_public.json")
RECIPE_OF_PEER = {"llamafactory-0.9.5": "llamafactory", "ms-swift-4.6.0": "ms-swift"}
NOT_OPTIONS = {"defaults", "non_defaults", "env_set"}
CHECKPOINT = ImageSettings()  # the embedded checkpoint's: patch 16, merge 2, 65,536–16,777,216 pixels


def case_options(case) -> dict:
    options = {key: value for key, value in case["settings"].items()
               if key not in NOT_OPTIONS and not key.endswith("_note")}
    return {key: None if value == "none" else value for key, value in options.items()}


def write_images(folder, record, sizes):
    for reference, (width, height) in zip(record["images"], sizes):
        path = folder / reference
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            Image.new("RGB", (width, height), (40, 90, 160)).save(path)


@pytest.fixture(scope="module")
def base_encoder(embedded_path):
    return Encoder.from_checkpoint(embedded_path)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("peer-images")


def encode_record(encoder, record, sizes, folder):
    write_images(folder, record, sizes)
    return encoder.encode(normalize_record(record, folder))


# -- the peers' own encodings

@pytest.mark.parametrize("case", PEER_CASES, ids=lambda case: case["name"])
def test_recipe_equals_peer_encoding(case, embedded_path, data_dir):
    encoder = Encoder.from_checkpoint(embedded_path).with_recipe(RECIPE_OF_PEER[case["peer"]], case_options(case))
    encoded = encode_record(encoder, case["record"], case["image_sizes"], data_dir)
    assert encoded.input_ids == case["input_ids"]
    assert encoded.labels == case["labels"]
    assert encoded.image_pad_counts == case["image_pad_counts"]
    truncation = case.get("truncation") or {}
    if case["input_ids"] is None:
        assert encoded.dropped and encoded.kept is None and encoded.drop_reason
    if "full_input_ids" in truncation:
        assert encoded.full_input_ids == truncation["full_input_ids"]
        assert encoded.full_labels == truncation["full_labels"]
    if "full_length" in truncation:
        assert encoded.full_length == truncation["full_length"]


def test_embedded_checkpoint_has_the_settings_these_tests_assume(base_encoder):
    assert base_encoder.checkpoint_settings == CHECKPOINT


def test_every_peer_case_is_covered():
    assert {case["peer"] for case in PEER_CASES} == set(RECIPE_OF_PEER)
    assert len(PEER_CASES) == 20


# -- geometry

def lf(**options):
    return make_recipe("llamafactory", CHECKPOINT, options)


def swift(**options):
    return make_recipe("ms-swift", CHECKPOINT, options)


@pytest.mark.parametrize("size, options, pads", [
    ((1080, 2400), {}, 576),
    ((1080, 2400), {"image_max_pixels": 16_777_216}, 2550),
    ((1170, 2532), {}, 560),
    ((300, 168), {}, 66),
    ((64, 64), {}, 64),
    ((3000, 3000), {"image_max_pixels": 16_777_216}, 8836),
    ((3000, 3000), {"image_max_pixels": 262_144}, 256),
])
def test_llamafactory_geometry(size, options, pads):
    assert lf(**options).geometry(*size).visual_tokens == pads


def test_llamafactory_pre_shrinks_with_truncated_sides_then_the_processor_rounds():
    result = lf().geometry(1080, 2400)
    assert (result.pre_width, result.pre_height) == (515, 1144)
    assert (result.resized_width, result.resized_height) == (512, 1152)
    assert result.processor_resizes and result.settings == CHECKPOINT
    # our native recipe skips the pre-shrink: the same budget gives 512×1120
    native = geometry(1080, 2400, CHECKPOINT.with_(max_pixels=589_824))
    assert (native.resized_width, native.resized_height, native.visual_tokens) == (512, 1120, 560)


def test_processor_rounding_is_half_to_even():
    """80/32 = 2.5 and 2000/32 = 62.5 round down to even multiples (half-up would give 96×2016)."""
    for recipe in (lf(), swift()):
        result = recipe.geometry(80, 2000)
        assert (result.resized_width, result.resized_height) == (64, 1984)


def test_llamafactory_side_floor_and_aspect_clamp():
    assert lf().pre_shrink(10, 500) == (28, 500)
    assert lf().pre_shrink(28, 6000) == (28, 5040)
    assert lf().pre_shrink(6000, 20) == (5040, 28)
    assert lf().geometry(28, 6000).visual_tokens > 0


@pytest.mark.parametrize("size, options, pads", [
    ((1080, 2400), {}, 2550),
    ((1080, 2400), {"IMAGE_MAX_TOKEN_NUM": 1280}, 1272),
    ((1080, 2400), {"IMAGE_MAX_TOKEN_NUM": 256}, 230),
    ((64, 64), {}, 4),
    ((64, 64), {"IMAGE_MIN_TOKEN_NUM": 64}, 64),
    ((300, 168), {}, 45),
    ((300, 168), {"IMAGE_MIN_TOKEN_NUM": 64}, 66),
    ((3000, 3000), {}, 8836),
    ((3000, 3000), {"IMAGE_MAX_TOKEN_NUM": 256}, 256),
])
def test_swift_geometry(size, options, pads):
    assert swift(**options).geometry(*size).visual_tokens == pads


def test_swift_resizes_itself_with_its_own_budget():
    result = swift(IMAGE_MAX_TOKEN_NUM=1280).geometry(1080, 2400)
    assert (result.pre_width, result.pre_height) == (1080, 2400)
    assert not result.processor_resizes
    assert (result.settings.min_pixels, result.settings.max_pixels) == (4 * 1024, 1280 * 1024)
    assert (result.settings.patch_size, result.settings.merge_size) == (16, 2)
    with pytest.raises(ValueError, match="aspect ratio"):
        swift().geometry(10, 2500)


@pytest.mark.parametrize("recipe, options, size", [
    ("llamafactory", {}, (1080, 2400)),
    ("llamafactory", {}, (64, 64)),
    ("ms-swift", {"IMAGE_MAX_TOKEN_NUM": 1280}, (1080, 2400)),
    ("ms-swift", {}, (300, 168)),
])
def test_pixels_agree_with_the_geometry(base_encoder, recipe, options, size):
    """The image processor's grid equals the recipe's (Encoder.pixels raises when they disagree)."""
    encoder = base_encoder.with_recipe(recipe, options)
    geom = encoder.geometry(*size)
    values, grid = encoder.pixels(Image.new("RGB", size, (200, 10, 10)), geom)
    assert tuple(int(v) for v in grid[0]) == geom.grid_thw


# -- samples built to the shapes PEERS.md describes

SYSTEM = "You are a GUI agent. Look at the screenshot and answer with the next action as a tool call."


def answer(step):
    return (f"<thinking>Step {step}: the target is visible.</thinking><tool_call>{{\"name\": \"mobile_use\", "
            f"\"arguments\": {{\"action\": \"click\", \"coordinate\": [{100 + step}, {200 + step}]}}}}</tool_call>")


def gui_record(size, images, turns, task_words=0):
    """A system prompt, a task, then `turns` answers; the last `images` user turns carry a screenshot."""
    task = "Task: open the settings app" + " and check it" * task_words + ".\n"
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task},
                {"role": "assistant", "content": answer(0)}]
    paths = []
    for step in range(1, turns):
        with_image = step > turns - 1 - images
        messages.append({"role": "user", "content": "<image>" if with_image else "(screenshot omitted)"})
        if with_image:
            paths.append(f"images/solid_{size[0]}x{size[1]}.png")
        messages.append({"role": "assistant", "content": answer(step)})
    return {"messages": messages, "images": paths}, [size] * len(paths)


def trained_text(encoder, encoded):
    return encoder.tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE_INDEX])


def test_llamafactory_default_cutoff_cuts_the_last_image(base_encoder, data_dir):
    encoder = base_encoder.with_recipe("llamafactory")
    record, sizes = gui_record((1080, 2400), images=3, turns=4, task_words=36)
    encoded = encode_record(encoder, record, sizes, data_dir)
    assert encoded.full_length == 2099 and len(encoded.input_ids) == 2048 and not encoded.dropped
    assert encoded.full_image_pad_counts == [576, 576, 576]
    assert encoded.image_pad_counts == [576, 576, 531]  # the short last answer stays whole, its image is cut
    assert encoded.cut_inside_image() == 2
    tail = encoder.tokenizer.decode(encoded.input_ids[-60:])
    assert tail.endswith(answer(3) + "<|im_end|>\n")
    assert trained_text(encoder, encoded).endswith(answer(3) + "<|im_end|>\n")
    assert encoded.labels == [encoded.full_labels[p] for p in encoded.kept]


def test_llamafactory_cut_splits_an_image_mid_way(base_encoder, data_dir):
    encoder = base_encoder.with_recipe("llamafactory", {"cutoff_len": 512})
    record, sizes = gui_record((300, 168), images=4, turns=6, task_words=27)
    encoded = encode_record(encoder, record, sizes, data_dir)
    special = encoder.special
    assert (encoded.full_length, len(encoded.input_ids)) == (726, 512)
    assert encoded.image_pad_counts == [66, 66, 17]
    assert encoded.input_ids.count(special.vision_start) == 3 and encoded.input_ids.count(special.vision_end) == 2
    # the pair is cut in proportion: the image's head, then the head of its answer, which is trained
    after_pads = len(encoded.input_ids) - encoded.input_ids[::-1].index(special.image_pad)
    head = encoder.tokenizer.decode(encoded.input_ids[after_pads:])
    assert answer(4).startswith(head) and len(head) > 10
    assert all(label != IGNORE_INDEX for label in encoded.labels[after_pads:])


def test_llamafactory_mask_history_keeps_the_last_turn_whole(base_encoder, data_dir):
    encoder = base_encoder.with_recipe("llamafactory", {"cutoff_len": 1024, "mask_history": True})
    record, sizes = gui_record((1080, 2400), images=2, turns=6)
    encoded = encode_record(encoder, record, sizes, data_dir)
    assert len(encoded.input_ids) == 1024 and encoded.image_pad_counts == [338, 576]
    assert trained_text(encoder, encoded) == answer(5) + "<|im_end|>\n"
    # the pairs go last-first: the system prompt's pair does not fit, the first image's pair keeps its head
    assert encoder.tokenizer.decode(encoded.input_ids[:4]) == "<|im_start|>user\n<|vision_start|>"
    assert encoder.special.role_headers["system"][1] not in encoded.input_ids[:4]


def test_infer_seqlen_rules():
    assert infer_seqlen(100, 10, 50) == (40, 10)  # short target: only the source is cut
    assert infer_seqlen(10, 100, 50) == (10, 40)  # short source: the target is cut
    assert infer_seqlen(60, 40, 50) == (30, 20)  # both, in proportion
    assert infer_seqlen(30, 20, 1000) == (30, 20)


def think_record():
    messages = [{"role": "user", "content": "Where is Wi-Fi?"}, {"role": "assistant", "content": "At the top."},
                {"role": "user", "content": "And Bluetooth?"}, {"role": "assistant", "content": "Just below."}]
    return {"messages": messages, "images": []}


def test_llamafactory_think_template_inserts_a_trained_block(base_encoder, data_dir):
    block = base_encoder.tokenizer("<think>\n\n</think>\n\n", add_special_tokens=False)["input_ids"]
    assert list(base_encoder.special.empty_think_block) == block
    plain = encode_record(base_encoder.with_recipe("llamafactory"), think_record(), [], data_dir)
    every = encode_record(base_encoder.with_recipe("llamafactory", {"template": "qwen3_vl"}), think_record(), [],
                          data_dir)
    last = encode_record(base_encoder.with_recipe("llamafactory", {"template": "qwen3_vl", "mask_history": True}),
                         think_record(), [], data_dir)
    think = "<think>\n\n</think>\n\n"
    assert len(every.input_ids) == len(plain.input_ids) + 2 * len(block)
    assert trained_text(base_encoder, every) == f"{think}At the top.<|im_end|>\n{think}Just below.<|im_end|>\n"
    assert len(last.input_ids) == len(plain.input_ids) + len(block)
    assert trained_text(base_encoder, last) == f"{think}Just below.<|im_end|>\n"
    assert trained_text(base_encoder, plain) == "At the top.<|im_end|>\nJust below.<|im_end|>\n"


def test_llamafactory_keeps_an_answer_that_already_thinks(base_encoder, data_dir):
    record = think_record()
    record["messages"][3]["content"] = "<think>\nIt is a list.\n</think>\n\nJust below."
    plain = encode_record(base_encoder.with_recipe("llamafactory"), record, [], data_dir)
    thinking = encode_record(base_encoder.with_recipe("llamafactory", {"template": "qwen3_vl"}), record, [], data_dir)
    assert len(thinking.input_ids) == len(plain.input_ids) + 4  # only the first answer got a block


def test_llamafactory_skips_what_sharegpt_cannot_read(base_encoder, data_dir):
    record = {"messages": [{"role": "user", "content": "Task"}, {"role": "user", "content": "More"},
                           {"role": "assistant", "content": "Done."}], "images": []}
    encoded = encode_record(base_encoder.with_recipe("llamafactory"), record, [], data_dir)
    assert encoded.dropped and "alternate" in encoded.drop_reason


def test_llamafactory_ignores_loss_flags(base_encoder, data_dir):
    record = think_record()
    record["messages"][1]["loss"] = False
    encoded = encode_record(base_encoder.with_recipe("llamafactory"), record, [], data_dir)
    assert "At the top." in trained_text(base_encoder, encoded)
    assert any("loss" in note for note in encoded.notes)


# -- ms-swift labels and truncation

def test_swift_final_loss_false_still_trains_the_suffix(base_encoder, data_dir):
    record = think_record()
    record["messages"][3]["loss"] = False
    record["messages"][1]["loss"] = False
    encoded = encode_record(base_encoder.with_recipe("ms-swift"), record, [], data_dir)
    assert trained_text(base_encoder, encoded) == "<|im_end|>\n"
    assert any("still trains" in note for note in encoded.notes)
    last_round = encode_record(base_encoder.with_recipe("ms-swift", {"loss_scale": "last_round"}), think_record(), [],
                               data_dir)
    assert trained_text(base_encoder, last_round) == "Just below.<|im_end|>\n"


def swift_truncation_case():
    return next(case for case in PEER_CASES if case["name"] == "sw_trunc_gui_en_4img_6turn_max512")


def test_swift_right_keeps_all_pads_as_one_run(base_encoder, data_dir):
    case = swift_truncation_case()
    encoder = base_encoder.with_recipe("ms-swift", {**case_options(case), "truncation_strategy": "right"})
    encoded = encode_record(encoder, case["record"], case["image_sizes"], data_dir)
    pad = encoder.special.image_pad
    assert len(encoded.input_ids) == 512 and encoded.image_pad_counts == [264]
    assert encoded.input_ids[-264:] == [pad] * 264
    assert encoder.special.vision_start not in encoded.input_ids
    others = [p for p, token in enumerate(encoded.full_input_ids) if token != pad]
    assert encoded.kept[:248] == others[:248]
    assert encoded.labels[0] == IGNORE_INDEX


def test_swift_left_keeps_all_pads_and_the_last_tokens(base_encoder, data_dir):
    case = swift_truncation_case()
    encoder = base_encoder.with_recipe("ms-swift", {**case_options(case), "truncation_strategy": "left"})
    encoded = encode_record(encoder, case["record"], case["image_sizes"], data_dir)
    pad = encoder.special.image_pad
    assert len(encoded.input_ids) == 512 and encoded.input_ids.count(pad) == 264
    others = [p for p, token in enumerate(encoded.full_input_ids) if token != pad]
    assert [p for p in encoded.kept if encoded.full_input_ids[p] != pad] == others[-248:]
    assert encoded.labels[0] == IGNORE_INDEX
    assert encoded.labels[-5:] == encoded.input_ids[-5:]  # the final answer is still trained


def test_swift_delete_drops_and_says_why(base_encoder, data_dir):
    case = swift_truncation_case()
    encoded = encode_record(base_encoder.with_recipe("ms-swift", case_options(case)), case["record"],
                            case["image_sizes"], data_dir)
    assert encoded.dropped and encoded.image_pad_counts is None
    assert "max_length 512" in encoded.drop_reason and "765" in encoded.drop_reason
    assert encoded.full_image_pad_counts == [66, 66, 66, 66]


# -- options

def test_recipes_are_registered():
    assert RECIPES["llamafactory"] is LlamaFactoryRecipe and RECIPES["ms-swift"] is SwiftRecipe
    with pytest.raises(RecipeError, match="llamafactory, ms-swift"):
        make_recipe("axolotl", CHECKPOINT)


@pytest.mark.parametrize("name, options, words", [
    ("llamafactory", {"cutoff": 10}, ["cutoff_len", "mask_history", "image_max_pixels"]),
    ("llamafactory", {"template": "qwen2_vl"}, ["qwen3_vl_nothink, qwen3_vl"]),
    ("llamafactory", {"mask_history": "maybe"}, ["true or false"]),
    ("llamafactory", {"train_on_prompt": True}, ["train_on_prompt false"]),
    ("ms-swift", {"max_pixels": 10}, ["IMAGE_MAX_TOKEN_NUM", "truncation_strategy"]),
    ("ms-swift", {"truncation_strategy": "split"}, ["delete, left, right"]),
    ("ms-swift", {"loss_scale": "all"}, ["default, last_round"]),
    ("ms-swift", {"IMAGE_MIN_TOKEN_NUM": 500, "IMAGE_MAX_TOKEN_NUM": 100}, ["not above"]),
])
def test_bad_options_name_the_valid_ones(name, options, words):
    with pytest.raises(RecipeError) as raised:
        make_recipe(name, CHECKPOINT, options)
    for word in words:
        assert word in str(raised.value)


def test_option_defaults_and_properties():
    recipe = lf()
    assert recipe.options == {"template": "qwen3_vl_nothink", "mask_history": False, "image_max_pixels": 589_824,
                              "image_min_pixels": 1024, "cutoff_len": 2048, "train_on_prompt": False}
    assert (recipe.label_mode, recipe.max_length, recipe.image_settings) == (LabelMode.ALL, 2048, CHECKPOINT)
    assert lf(mask_history="true").label_mode is LabelMode.LAST
    assert LlamaFactoryRecipe.native_equivalent("max_pixels") == "image_max_pixels"
    assert LlamaFactoryRecipe.native_equivalent("mode") == "mask_history"
    recipe = swift()
    assert recipe.options == {"template": "qwen3_vl", "loss_scale": "default", "IMAGE_MIN_TOKEN_NUM": 4,
                              "IMAGE_MAX_TOKEN_NUM": 16384, "max_length": None, "truncation_strategy": "delete"}
    assert (recipe.label_mode, recipe.max_length) == (LabelMode.ALL, None)
    assert swift(loss_scale="last_round", max_length="none").label_mode is LabelMode.LAST
    assert SwiftRecipe.native_equivalents == {"max_length": "max_length", "max_pixels": "IMAGE_MAX_TOKEN_NUM",
                                              "min_pixels": "IMAGE_MIN_TOKEN_NUM", "mode": "loss_scale"}


def test_warnings_say_what_a_user_would_not_expect():
    think = " ".join(lf(template="qwen3_vl").warnings())
    assert "<think>\\n\\n</think>\\n\\n" in think and "qwen3_vl_nothink" in think
    assert not any("think" in note for note in lf().warnings())
    pixels = " ".join(lf().warnings())
    assert "589,824" in pixels and "576" in pixels and "2,550" in pixels
    assert not any("image_max_pixels" in note for note in lf(image_max_pixels=16_777_216).warnings())
    minimum = " ".join(swift().warnings())
    assert "min_pixels" in minimum and "45" in minimum and "66" in minimum
    assert not any("min_pixels" in note for note in swift(IMAGE_MIN_TOKEN_NUM=64).warnings())


# -- peer configs

def test_llamafactory_yaml():
    text = """
### model
model_name_or_path: Qwen/Qwen3-VL-2B-Instruct
### dataset
dataset: screens
template: qwen3_vl_nothink
cutoff_len: 4096
mask_history: true
image_max_pixels: 262144
train_on_prompt: false
"""
    options = options_from_llamafactory_yaml(text)
    assert options == {"template": "qwen3_vl_nothink", "cutoff_len": 4096, "mask_history": True,
                       "image_max_pixels": 262144, "train_on_prompt": False}
    assert "cutoff_len: 4096" in options.read and "mask_history: true" in options.read
    assert options.ignored == ["model_name_or_path", "dataset"]
    assert make_recipe("llamafactory", CHECKPOINT, options).max_length == 4096


@pytest.mark.parametrize("text, words", [
    ("template: [qwen3_vl", "not valid YAML"),
    ("- template", "mapping"),
    ("template: qwen2_vl", "qwen3_vl_nothink, qwen3_vl"),
    ("cutoff_len: long", "positive whole number"),
    ("train_on_prompt: true", "train_on_prompt false"),
])
def test_llamafactory_yaml_refusals(text, words):
    with pytest.raises(RecipeError, match=words):
        options_from_llamafactory_yaml(text)


def test_swift_command():
    text = """CUDA_VISIBLE_DEVICES=0 IMAGE_MAX_TOKEN_NUM=1280 MAX_PIXELS=1003520 MIN_PIXELS=65536 \\
swift sft \\
    --model Qwen/Qwen3-VL-2B-Instruct --model_type qwen3_vl \\
    --dataset train.jsonl val.jsonl \\
    --template qwen3_vl --loss_scale=last_round \\
    --max_length 4096 --truncation_strategy left
"""
    options = options_from_swift_command(text)
    assert options == {"template": "qwen3_vl", "loss_scale": "last_round", "max_length": 4096,
                       "truncation_strategy": "left", "IMAGE_MAX_TOKEN_NUM": 1280, "IMAGE_MIN_TOKEN_NUM": 64}
    assert "--model" in options.ignored and "CUDA_VISIBLE_DEVICES" in options.ignored
    assert any(item.startswith("MAX_PIXELS") for item in options.ignored)  # the token variable wins
    assert swift(**options).geometry(1080, 2400).visual_tokens == 1272


def test_swift_command_legacy_pixels():
    options = options_from_swift_command("export MAX_PIXELS=1003520\nswift sft --model m")
    assert options == {"IMAGE_MAX_TOKEN_NUM": 980}
    assert options.read == ["MAX_PIXELS=1003520 (as IMAGE_MAX_TOKEN_NUM=980, ÷1024)"]


@pytest.mark.parametrize("text, words", [
    ("swift infer --model m", "swift sft"),
    ("python train.py", "swift sft"),
    ("swift sft --loss_scale all", "default, last_round"),
    ("swift sft --max_length", "needs one value"),
    ("swift sft --template 'qwen3_vl", "cannot be read"),
    ("MAX_PIXELS=big swift sft", "whole number"),
    ("swift sft --truncation_strategy split", "delete, left, right"),
])
def test_swift_command_refusals(text, words):
    with pytest.raises(RecipeError, match=words):
        options_from_swift_command(text)

