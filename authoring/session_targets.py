"""Target boxes of the step or recovery step an annotator session edits: typed, drawn or picked.

A box is abs-original pixels [x1, y1, x2, y2] of the screenshot being edited; validation reports a click
outside it ("misses its target"). The wrong action of a correction has none: it is meant to miss.
"""
from __future__ import annotations

from authoring.model import box_from_corners, parse_box
from authoring.session_view import WRONG


class TargetBoxEditing:
    """Mixed into AnnotatorSession: needs its _target(), _save(), editing and recovery_index()."""

    def _box_owner(self, store):
        """(record, recovery index or None, width, height) of what a target box belongs to; refuses the wrong action."""
        kind, record, _, _, image, width, height, _ = self._target(store)
        if self.editing == WRONG:
            raise ValueError("The wrong action has no target box: it is meant to miss. Draw the box on the step.")
        if image is None:
            raise ValueError(self.missing_screenshot_sentence(store))
        return record, self.recovery_index() if kind == "correction" else None, width, height

    def _save_target(self, store, target: dict | None) -> list[str]:
        record, index, *_ = self._box_owner(store)
        if index is None:
            return self._save(store, record, "step", {"target": target})
        recovery = [r.to_json() for r in record.recovery]
        recovery[index]["target"] = target
        return self._save(store, record, "correction", {"recovery": recovery})

    def set_target_box(self, store, box, label: str = "") -> list[str]:
        """A typed box "x1, y1, x2, y2" (or four numbers) in abs-original pixels; ValueError says what is wrong."""
        _, _, width, height = self._box_owner(store)
        self.drawing_box, self.pending_corner = False, None
        return self._save_target(store, {"box": list(parse_box(box, width, height)), "label": (label or "").strip()})

    def start_box(self, store) -> list[str]:
        """The next two clicks on the screenshot are the corners of the target box."""
        self._box_owner(store)
        self.drawing_box, self.pending_corner, self.pending_point = True, None, None
        return ["Click one corner of the target element, then the opposite corner."]

    def click_box_corner(self, store, x: float, y: float) -> tuple[list[str], list[str]]:
        """One corner of the box being drawn (start_box); the second sets the box."""
        if self.pending_corner is None:
            self.pending_corner = (float(x), float(y))
            return [f"First corner ({x:.0f}, {y:.0f}) set; click the opposite corner."], []
        first, self.pending_corner, self.drawing_box = self.pending_corner, None, False
        _, _, width, height = self._box_owner(store)
        box = box_from_corners(first, (x, y), width, height)
        return [f"Target box ({box[0]:.0f}, {box[1]:.0f})–({box[2]:.0f}, {box[3]:.0f}) set."], \
            self._save_target(store, {"box": list(box), "label": ""})

    def target_elements(self, store) -> list[dict]:
        """The element boxes the screenshot being edited knows (demo elements, imported boxes)."""
        image = self._target(store)[4]
        if not image:
            return []
        elements = list(store.screenshot(image).elements)
        boxes = {tuple(e["box"]) for e in elements}
        return elements + [t for t in store.image_targets(image) if tuple(t["box"]) not in boxes]

    def pick_target_element(self, store, label: str) -> list[str]:
        """Use a known element's box as the target."""
        elements = self.target_elements(store)
        chosen = next((e for e in elements if e.get("label") == label), None)
        if chosen is None:
            known = ", ".join(repr(e.get("label")) for e in elements[:8]) or "none are known for this screenshot"
            raise ValueError(f"No element {label!r} on this screenshot (elements: {known}).")
        return self.set_target_box(store, chosen["box"], chosen.get("label", ""))

    def clear_target(self, store) -> list[str]:
        self.drawing_box, self.pending_corner = False, None
        return self._save_target(store, None)
