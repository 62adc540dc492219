"""Trajectory → training samples: one multi-turn sample per step (seed §6.1.1, §8.2.2).

A sample is: system prompt, the instruction, the previous steps as assistant turns (only the last
K screenshots kept), the current screenshot, then the target answer. Coordinates are written in the
export convention; steps carry abs-original pixels.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

from lora_core.data.agent import format_answer, map_points
from lora_core.data.coords import Frame, OriginalFrame, as_int_point, from_original

DEFAULT_SYSTEM_PROMPT = (
    "You are a GUI agent. You are given a task and your action history, with screenshots. "
    "You need to perform the next action to complete the task. Answer with your reasoning in "
    "<thinking></thinking> and the action as JSON in <tool_call></tool_call>."
)
CURRENT_SCREENSHOT_TEXT = "Current screenshot"


@dataclass(frozen=True)
class SliceStep:
    """One step as the slicer needs it: screenshot (path relative to the export), its size, the answer."""

    image: str
    width: int
    height: int
    thinking: str
    action: dict  # abs-original pixels
    wrong: bool = False  # a deliberately wrong step kept in history, never trained


@dataclass
class SliceOptions:
    max_images: int = 1  # the seed's max_images_per_sample
    coordinate_space: str = "norm1000"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    frame_of: Callable[[int, int], Frame] | None = None  # the encoder's geometry: needed for abs-resized


def step_answer(step: SliceStep, options: SliceOptions) -> str:
    frame_of = options.frame_of or OriginalFrame
    geom = frame_of(step.width, step.height)

    def convert(x, y):
        point = from_original(x, y, options.coordinate_space, geom)
        return as_int_point(point, options.coordinate_space, geom)

    return format_answer(step.thinking, map_points(step.action, convert))


def sample_for_step(task: str, steps: Sequence[SliceStep], index: int, options: SliceOptions) -> dict:
    """The sample that trains step `index`, with steps[:index] as its history."""
    if options.max_images < 1:
        raise ValueError("max_images must be at least 1: the current screenshot is always kept.")
    messages: list[dict] = [
        {"role": "system", "content": options.system_prompt},
        {"role": "user", "content": task},
    ]
    first_history_image = index - (options.max_images - 1)
    for position, step in enumerate(steps[:index]):
        if position >= first_history_image:
            messages.append({"role": "user", "content": [{"type": "image", "image": step.image}]})
        message = {"role": "assistant", "content": step_answer(step, options)}
        if step.wrong:
            message["loss"] = False
        messages.append(message)
    current = steps[index]
    messages.append({"role": "user", "content": [
        {"type": "image", "image": current.image}, {"type": "text", "text": CURRENT_SCREENSHOT_TEXT}]})
    messages.append({"role": "assistant", "content": step_answer(current, options)})
    return {"messages": messages}


def slice_trajectory(task: str, steps: Sequence[SliceStep], options: SliceOptions | None = None) -> list[dict]:
    """One sample per step that is not itself a wrong step."""
    options = options or SliceOptions()
    return [sample_for_step(task, steps, index, options) for index, step in enumerate(steps) if not step.wrong]


def sample_images(sample: dict) -> list[str]:
    return [
        item["image"]
        for message in sample["messages"]
        if isinstance(message["content"], list)
        for item in message["content"]
        if item.get("type") == "image"
    ]


def demo_sample_records(demo, options: SliceOptions | None = None) -> list[dict]:
    """The demo trajectories sliced one sample per step, as native records (docs/FORMATS.md) whose
    images are relative to the demo folder and whose metadata carries what evaluation needs."""
    options = options or SliceOptions()
    records = []
    for trajectory in demo.trajectories:
        steps = []
        for step in trajectory.steps:
            screen = demo.screen(step.screenshot)
            steps.append(SliceStep(str(screen.path.relative_to(demo.root)), screen.width, screen.height,
                                   step.thinking, dict(step.action)))
        for index, sample in enumerate(slice_trajectory(trajectory.task, steps, options)):
            step = trajectory.steps[index]
            metadata = {"source": trajectory.id, "kind": "step", "step_index": index, "task": trajectory.task,
                        "coordinate_space": options.coordinate_space,
                        "screen_size": [steps[index].width, steps[index].height], "action_abs": dict(step.action)}
            if step.target is not None:
                metadata["target_box"] = list(step.target.box)
                metadata["target_label"] = step.target.label
            records.append({"id": f"{trajectory.id}-step-{index + 1:02d}", **sample, "metadata": metadata})
    return records


def split_trajectories(trajectory_ids, val_ratio: float, seed: int) -> tuple[list[str], list[str]]:
    """(train ids, validation ids): whole trajectories go to one side (seed §8.6.4), by a seeded shuffle.

    At least one trajectory goes to validation when val_ratio > 0 and there are two or more; at least one
    always stays in training. The exporter and the trainer both split with this, so a seed means one split.
    """
    ids = sorted(set(trajectory_ids))
    random.Random(seed).shuffle(ids)
    count = 0
    if val_ratio > 0 and len(ids) >= 2:
        count = min(max(round(len(ids) * val_ratio), 1), len(ids) - 1)
    return sorted(ids[count:]), sorted(ids[:count])
