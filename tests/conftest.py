import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = ROOT / "tests" / "data"  # fixtures and peer data, carried in so a clean clone tests alone
FIXTURES = TEST_DATA / "fixtures"
PEER_DATA = TEST_DATA / "peer-data"


def load_fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    """One workspace per test session: the embedded checkpoint is built once."""
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def embedded_path(workspace) -> Path:
    from lora_core.qwen.checkpoint import ensure_embedded_checkpoint

    return ensure_embedded_checkpoint(workspace)


@pytest.fixture(scope="session")
def embedded_info(embedded_path):
    from lora_core.qwen.checkpoint import read_model_info

    return read_model_info(embedded_path)


@pytest.fixture(scope="session")
def tokenizer(embedded_path):
    from lora_core.qwen.checkpoint import load_tokenizer

    return load_tokenizer(str(embedded_path))


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The real app, started as `python app.py` in a subprocess with its own workspace."""
    from tests.server import AppServer

    server = AppServer(tmp_path_factory.mktemp("app-workspace"))
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def encoder(embedded_path):
    """The embedded checkpoint's native encoder."""
    from lora_core.qwen.encoder import Encoder

    return Encoder.from_checkpoint(embedded_path)


@pytest.fixture(scope="session")
def special(encoder):
    return encoder.special
