"""The Mask Inspector's HTTP API on the real app (gradio_client): uploads, pasted JSON, bad input."""
import json
import zipfile

import pytest

from tests.conftest import PEER_DATA

LLAMAFACTORY = PEER_DATA / "llamafactory"


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server.url, verbose=False)


@pytest.fixture(scope="module")
def mllm_zip(tmp_path_factory):
    """LLaMA-Factory's mllm_demo.json with its images, zipped as a user would upload it."""
    path = tmp_path_factory.mktemp("upload") / "mllm_demo.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(LLAMAFACTORY / "mllm_demo.json", "mllm_demo.json")
        for image in (LLAMAFACTORY / "mllm_demo_data").iterdir():
            archive.write(image, f"mllm_demo_data/{image.name}")
    return path


def inspect(client, dataset=None, text=None, index=0, mode="last", max_length=6200, setting="max520"):
    from gradio_client import handle_file

    return client.predict(handle_file(str(dataset)) if dataset else None, text, index, mode, max_length, setting,
                          api_name="/mask_inspect")


def test_mllm_demo_previews_and_audits_over_http(client, mllm_zip):
    from gradio_client import handle_file

    last = inspect(client, mllm_zip, index=0)
    every = inspect(client, mllm_zip, index=0, mode="all")
    assert last["form"] == "JSON list" and last["samples"] == 6
    assert every["counts"]["trained"] > last["counts"]["trained"] > 0
    assert last["input_ids"] == every["input_ids"] and len(last["labels"]) == len(last["input_ids"])
    report = client.predict(handle_file(str(mllm_zip)), None, "last", 6200, "max520", api_name="/mask_audit")
    assert report["totals"]["read"] == 6 and report["totals"]["errors"] == 0


def test_pasted_json_and_the_demo(client):
    pasted = json.dumps({"messages": [{"role": "user", "content": "hi"},
                                      {"role": "assistant", "content": "hello<|im_end|> there"}]})
    result = inspect(client, text=pasted, max_length=12)
    assert "literal_im_end" in {p["code"] for p in result["pitfalls"]}
    demo = inspect(client, index=2)
    assert demo["counts"]["image"] > 0 and demo["counts"]["trained"] > 0


@pytest.mark.parametrize("text, message", [
    ('{"messages": [', "line 1, column"),
    ('{"messages": [{"role": "user", "content": [{"type": "image", "image": "../../etc/x.png"}]}]}', "outside"),
    ('{"messages": [{"role": "user", "content": "<image>"}], "images": ["nope.png"]}', "nope.png does not exist"),
])
def test_bad_input_gets_a_sentence_and_the_app_keeps_working(client, text, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        inspect(client, text=text)
    assert inspect(client, index=0)["counts"]["total"] > 0
