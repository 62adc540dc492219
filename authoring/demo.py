"""Seed an empty store with the demo trajectories, so the tab can be used at once."""
from __future__ import annotations

from demo import DemoData

SEEDED_KEY = "demo_seeded"
DEMO_ANNOTATOR = "demo"


def seed_demo(store, demo: DemoData) -> bool:
    """Copy the demo screens and trajectories in, once per store; returns whether it seeded now."""
    if store.get_meta(SEEDED_KEY) or not store.is_empty():
        return False
    with store.transaction() as db:
        if store.get_meta(SEEDED_KEY) or db.execute("SELECT COUNT(*) FROM trajectories").fetchone()[0]:
            return False  # another process seeded first
        stored = {}
        for screen in demo.screens:
            elements = [{"label": e.label, "kind": e.kind, "box": list(e.box)} for e in screen.elements]
            stored[screen.name] = store.add_image_file(screen.path, screen.width, screen.height, elements, db=db)
        ids = {}
        for trajectory in demo.trajectories:
            rows = [{"image": stored[step.screenshot], "thinking": step.thinking, "action": dict(step.action),
                     "target": {"box": list(step.target.box), "label": step.target.label} if step.target else None}
                    for step in trajectory.steps]
            ids[trajectory.id] = store.insert_trajectory(db, trajectory.id, trajectory.task, trajectory.app, "demo",
                                                         rows, DEMO_ANNOTATOR)
        _example_correction(store, db, demo, stored, ids)
        store.set_meta(SEEDED_KEY, True, db)
    return True


def _example_correction(store, db, demo: DemoData, stored: dict, ids: dict) -> None:
    """One worked example: tapping the Shared tab instead of the Sales folder, then going back."""
    trajectory_id = ids.get("share_q3_report_with_alice")
    if trajectory_id is None:
        return
    files_root, shared = demo.screen("files_root"), demo.screen("shared")
    wrong_tab, sales = files_root.element("tab: Shared"), files_root.element("row: Sales")
    recovery = [
        {"image": stored["shared"], "width": shared.width, "height": shared.height,
         "thinking": "This is the Shared with me list, not My Drive: tapping the Shared tab was a mistake, and the "
                     "Q3 report lives in my own Sales folder. I go back to My Drive.",
         "action": {"action": "system_button", "button": "back"}, "target": None},
        {"image": stored["files_root"], "width": files_root.width, "height": files_root.height,
         "thinking": "I am back on My Drive, which lists Sales as the first folder. The Q3 report belongs there, so "
                     "I open Sales.",
         "action": {"action": "click", "coordinate": list(sales.center)},
         "target": {"box": list(sales.box), "label": sales.label}},
    ]
    store.insert_correction_row(
        db, trajectory_id, 1,
        "My Drive is open. The report may have been shared with the team, so I look in the Shared tab first.",
        {"action": "click", "coordinate": list(wrong_tab.center)}, recovery, DEMO_ANNOTATOR)
