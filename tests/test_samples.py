import pytest

from lora_core.data.samples import SampleFormatError, normalize_record


def test_loss_flags_must_be_booleans(tmp_path):
    record = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "loss": "no"}]}
    with pytest.raises(SampleFormatError, match="'loss' must be true, false or null"):
        normalize_record(record, tmp_path)
    record["messages"][1]["loss"] = False
    assert normalize_record(record, tmp_path).messages[1]["loss"] is False


def test_llamafactory_placeholders_must_match_images(tmp_path):
    record = {"messages": [{"role": "user", "content": "<image><image>two"}, {"role": "assistant", "content": "ok"}],
              "images": ["a.png"]}
    with pytest.raises(SampleFormatError, match="2 <image> placeholder"):
        normalize_record(record, tmp_path)


def test_mai_ui_inline_images_have_no_file(tmp_path):
    record = {"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "[IMAGE_DATA]"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<thinking>x</thinking><tool_call>{}</tool_call>"}]},
    ]}
    sample = normalize_record(record, tmp_path)
    assert sample.images == [None] and sample.source_format == "mai-ui"
    assert sample.image_sizes(placeholder_size=(1080, 2400)) == [(1080, 2400)]
    with pytest.raises(SampleFormatError, match="inline data"):
        sample.image_sizes()
