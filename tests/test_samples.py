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


def test_the_encoder_sizes_inline_images_by_the_placeholder(tmp_path, encoder):
    """An inline image counts its pads at the size given for it, and refuses to make pixels (it has no file)."""
    record = {"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "[IMAGE_DATA]"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<thinking>x</thinking><tool_call>{}</tool_call>"}]},
    ]}
    sample = normalize_record(record, tmp_path)
    encoded = encoder.with_options(max_dim=1024).encode(sample, placeholder_size=(1080, 2400))
    assert encoded.placeholder_images == 1
    assert encoded.full_image_pad_counts == [448] == [g.visual_tokens for g in encoded.geometries]
    assert encoded.image_spans and all(encoded.full_input_ids[i] == encoder.special.image_pad
                                       for i in range(*encoded.image_spans[0]))
    with pytest.raises(SampleFormatError, match="inline image has no file"):
        encoded.pixels()
    with pytest.raises(SampleFormatError, match="inline data"):
        encoder.encode(sample)


def test_the_encoder_names_the_image_it_cannot_size(tmp_path, encoder):
    from PIL import Image

    Image.new("RGB", (2, 500), "white").save(tmp_path / "strip.png")
    record = {"messages": [{"role": "user", "content": [{"type": "image", "image": "strip.png"}]},
                           {"role": "assistant", "content": "ok"}]}
    sample = normalize_record(record, tmp_path, where="data.jsonl, line 3")
    with pytest.raises(SampleFormatError, match=r"data.jsonl, line 3, image 1 \(strip.png\): .*aspect ratio"):
        encoder.encode(sample)
