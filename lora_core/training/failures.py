"""RunFailure: a run that cannot go on, with one of the registry's failure reasons."""
from __future__ import annotations

from lora_core.training.log_diagnosis import FAILURE_REASONS


class RunFailure(Exception):
    """A run that cannot go on; `reason` is one of FAILURE_REASONS."""

    def __init__(self, reason: str, message: str):
        assert reason in FAILURE_REASONS, reason
        super().__init__(message)
        self.reason = reason
