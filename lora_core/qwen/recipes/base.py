"""What a recipe is: one training stack's rule for turning a rendered sample into model inputs.

A recipe decides four things, with that stack's own option names and defaults: the image sizing (pre-shrink,
pixel budget, rounding), the chat template's extras (a think block or not), the label rule and the truncation.
The encoder renders with the checkpoint's template, then hands the rendering to its recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

from lora_core.qwen.chat import LabelMode, RenderedChat
from lora_core.qwen.geometry import Geometry, ImageSettings
from lora_core.qwen.special_tokens import SpecialTokens


class RecipeError(ValueError):
    """An unknown recipe or option, or a value the recipe cannot take; the message names the valid ones."""


@dataclass
class RecipeEncoding:
    """What the recipe makes of one rendered sample.

    `full_*` are the untruncated ids and labels (with any ids the recipe adds, e.g. a think block);
    `kept` lists the positions of `full_input_ids` that survive truncation, None when the row is dropped.
    """

    full_input_ids: list[int]
    full_labels: list[int]
    input_ids: list[int] | None
    labels: list[int] | None
    kept: list[int] | None
    drop_reason: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OptionSpec:
    name: str
    default: Any
    kind: str  # "int", "bool", "choice", "str", "int-or-none"
    choices: tuple = ()
    help: str = ""

    def parse(self, value, recipe: str):
        """A value as typed on a command line or read from YAML; `none` stands for null."""
        if isinstance(value, str) and value.strip().lower() in ("none", "null", "") and self.kind == "int-or-none":
            return None
        try:
            if self.kind in ("int", "int-or-none"):
                if value is None:
                    if self.kind == "int":
                        raise ValueError
                    return None
                if isinstance(value, bool):
                    raise ValueError
                number = int(value)
                if number != float(value) or number < 1:
                    raise ValueError
                return number
            if self.kind == "bool":
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in ("true", "1", "yes"):
                    return True
                if text in ("false", "0", "no"):
                    return False
                raise ValueError
            if self.kind == "choice":
                text = str(value).strip()
                if text not in self.choices:
                    raise ValueError
                return text
            return str(value)
        except (TypeError, ValueError):
            expected = {"int": "a positive whole number", "int-or-none": "a positive whole number or none",
                        "bool": "true or false", "choice": "one of " + ", ".join(map(str, self.choices)),
                        "str": "text"}[self.kind]
            raise RecipeError(f"{recipe} option {self.name} must be {expected}, got {value!r}.") from None


class Recipe:
    """Base class: subclasses set `name`, `option_specs` and implement geometry and encode."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    option_specs: ClassVar[tuple[OptionSpec, ...]] = ()
    native_equivalents: ClassVar[dict[str, str]] = {}  # native option -> this recipe's nearest option

    @classmethod
    def native_equivalent(cls, native_option: str) -> str | None:
        return cls.native_equivalents.get(native_option)

    def __init__(self, checkpoint: ImageSettings, **options):
        self.checkpoint = checkpoint  # the checkpoint's own image processor settings
        specs = {spec.name: spec for spec in self.option_specs}
        unknown = [key for key in options if key not in specs]
        if unknown:
            raise RecipeError(
                f"The {self.name} recipe has no option {unknown[0]!r}; its options are: {', '.join(specs)}."
            )
        self.options = {name: spec.default for name, spec in specs.items()}
        self.options.update({key: specs[key].parse(value, self.name) for key, value in options.items()})
        self.validate()

    def validate(self) -> None:
        """Refuse option combinations the recipe cannot follow."""

    def replace(self, **options) -> "Recipe":
        return type(self)(self.checkpoint, **{**self.options, **options})

    def with_checkpoint(self, checkpoint: ImageSettings) -> "Recipe":
        return type(self)(checkpoint, **self.options)

    @property
    def non_default_options(self) -> dict:
        return {spec.name: self.options[spec.name] for spec in self.option_specs
                if self.options[spec.name] != spec.default}

    def key(self) -> tuple:
        return (self.name, tuple(sorted(self.options.items())), self.checkpoint)

    def describe(self) -> str:
        changed = ", ".join(f"{k}={v}" for k, v in self.non_default_options.items())
        return f"{self.title or self.name}" + (f" ({changed})" if changed else "")

    # -- what subclasses define

    @property
    def image_settings(self) -> ImageSettings:
        """The ImageSettings that describe this recipe's sizing as closely as ImageSettings can."""
        return self.checkpoint

    def geometry(self, width: int, height: int) -> Geometry:
        raise NotImplementedError

    def encode(self, rendered: RenderedChat, special: SpecialTokens) -> RecipeEncoding:
        raise NotImplementedError

    @property
    def max_length(self) -> int | None:
        """The token limit the recipe cuts or drops at, if any."""
        return None

    @property
    def label_mode(self) -> LabelMode:
        """`last` when only the final answer is trained by default, `all` when every answer is."""
        return LabelMode.LAST

    def warnings(self) -> list[str]:
        """Where this recipe's defaults differ from what a user probably expects."""
        return []

    def sample_warnings(self, messages: Sequence[dict]) -> list[str]:
        """Sample-specific surprises under this recipe (e.g. a `loss: false` answer that still trains)."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"


def block_roles(input_ids: Sequence[int], special: SpecialTokens) -> list[tuple[int, str]]:
    """(position of <|im_start|>, role) of each template block, in order."""
    return [(position, special.role_at(input_ids, position))
            for position, token in enumerate(input_ids) if token == special.im_start]


def last_message_loss(messages: Sequence[dict]) -> bool | None:
    """The final message's `loss` flag when the final message is an assistant answer."""
    if messages and messages[-1].get("role") == "assistant":
        return messages[-1].get("loss")
    return None
