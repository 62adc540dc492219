"""The Authoring tab's step view: the editors' component updates, and the canvas JSON, which also carries the
display-only parts (header, tables, problems, history, notices) as HTML panels that static/canvas.js puts in place."""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from authoring.model import Action
from authoring.render import marks_for
from authoring.session import STEP, WRONG, AnnotatorSession
from ui.canvas import FileURLs, SessionMemory, canvas_value

SEED_SHARE = (0.20, 0.30)  # the seed's advice for the share of error → correction samples
TOOLS = [("the action's point", "point"), ("the target box (drag or two corners)", "box")]
# the view's components, in the order render_view returns them
VIEW_FIELDS = ("shown", "trajectory", "editing", "canvas", "kind", "text", "button", "direction", "finish", "thinking",
               "status", "correction", "after", "target_element", "target_box")
# the panels the canvas JSON fills (see panel()), in page order
PANELS = ("progress", "share", "states", "history", "header", "coordinate", "notice", "problems")


def panel(name: str) -> str:
    """The empty slot a panel's HTML goes into."""
    return f'<div class="auth-panel" data-zc-panel="auth-{name}"></div>'


def progress_table(store) -> str:
    rows = []
    for trajectory_id, info in store.progress().items():
        share = info["finished"] / info["steps"] if info["steps"] else 0
        rows.append(
            f'<tr data-trajectory="{html.escape(trajectory_id)}"><td>{html.escape(trajectory_id)}</td>'
            f'<td><span class="auth-bar"><span style="width:{share:.0%}"></span></span> {info["finished"]}/{info["steps"]}</td>'
            f'<td>{info["corrections"]}</td><td class="auth-time">{info["seconds"] / 60:.1f} min</td></tr>')
    return ('<div class="auth-table-wrap"><table class="auth-progress" id="auth-progress"><colgroup><col><col style="width:7.5em">'
            '<col style="width:3.2em"><col style="width:4.6em"></colgroup><thead><tr><th>trajectory</th><th>done</th>'
            f'<th>corr.</th><th>time</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def share_line(store) -> str:
    steps, corrections = store.sample_counts()
    total = steps + corrections
    share = corrections / total if total else 0.0
    low, high = SEED_SHARE
    verdict = ("auth-share-ok", "within") if low <= share <= high else ("auth-share-low", "below" if share < low else "above")
    return (f'<div id="auth-share">Correction samples: <b data-field="corrections">{corrections}</b> of '
            f'{total} (<span class="{verdict[0]}" data-field="share">{share:.0%}</span>), {verdict[1]} the '
            f"seed's {low:.0%}–{high:.0%} guidance.</div>")


def problems_html(problems) -> str:
    if not problems:
        return '<div id="auth-problems" class="auth-ok">All checks pass for this step and its corrections.</div>'
    items = "".join(f'<li data-check="{p.check}"><b>{html.escape(p.record)}</b>: {html.escape(p.message)}</li>'
                    for p in problems)
    return f'<div id="auth-problems"><ul class="auth-problems">{items}</ul></div>'


def states_table(view) -> str:
    """Each step, wrong action and recovery step of the trajectory with its own status; the edited one marked."""
    rows = []
    for row in view.step_states:
        here = row["step"] == view.position + 1 and (
            row["part"] == view.editing if row["part"] != "step" else view.editing == STEP) and (
            row["correction"] in (None, view.correction_id))
        part = row["part"] if row["correction"] is None else f'{row["part"]} (correction {row["correction"]})'
        rows.append(f'<tr data-step="{row["step"]}" data-part="{html.escape(row["part"])}" '
                    f'data-correction="{row["correction"] or ""}" data-status="{html.escape(row["status"])}"'
                    f'{" class=auth-here" if here else ""}><td>{row["step"]}</td><td>{html.escape(part)}</td>'
                    f'<td>{html.escape(row["action"])}</td><td data-field="status">{html.escape(row["status"])}</td></tr>')
    return ('<div class="auth-table-wrap"><table class="auth-progress auth-states" id="auth-states"><colgroup>'
            '<col style="width:2.4em"><col style="width:34%"><col><col style="width:5.5em"></colgroup><thead><tr>'
            f'<th>#</th><th>part</th><th>action</th><th>status</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def edited_image(session: AnnotatorSession, store) -> str | None:
    """The stored screenshot (relative path) of what the clicks edit; None for a recovery step without one."""
    index = session.recovery_index()
    correction = session.current_correction(store)
    if index is not None and correction is not None and index < len(correction.recovery):
        return correction.recovery[index].image
    return session.current_step(store).image


def canvas_marks(session: AnnotatorSession, store, action: dict) -> list[dict]:
    role = "step" if session.editing == STEP else ("wrong" if session.editing == WRONG else "recovery")
    marks = marks_for(action, role)
    if session.editing == WRONG:
        marks = marks_for(session.current_step(store).action, "step") + marks  # the right point, for comparison
    return [{"role": m.role, "x": m.x, "y": m.y, **({"end": list(m.end)} if m.end else {})} for m in marks]


def after_choices(store, view, current: str | None) -> list[tuple[str, str]]:
    """Screenshots to pick for a recovery step: the trajectory's other steps (never the pre-error one)."""
    steps = store.steps(view.trajectory_id)
    before = steps[view.position].image
    choices, seen = [], {before}
    for step in steps:
        if step.image not in seen:
            seen.add(step.image)
            choices.append((f"step {step.number}'s screenshot", step.image))
    if current and current not in seen:
        choices.append(("uploaded screenshot", current))
    return choices


def header_html(view) -> str:
    lock = f"<br>🔒 {html.escape(view.locked)}" if view.locked else ""
    return (f"<b>{html.escape(view.trajectory_id)}</b> — {html.escape(view.task)}<br>Step <b>{view.position + 1}</b> "
            f'of {view.step_count} · editing <b data-field="editing">{html.escape(view.editing)}</b> · '
            f"{view.width}×{view.height} px{lock}")


def history_html(view, link) -> str:
    """Thumbnails of the previous steps, each a link to its picture; `link(path)` is the URL of a file."""
    if not view.history:
        return '<div class="auth-history auth-history-empty">No previous steps.</div>'
    items = "".join(f'<figure><a href="{html.escape(link(path))}" target="_blank" rel="noopener">'
                    f'<img src="{html.escape(link(path))}" alt="{html.escape(caption)}" loading="lazy"></a>'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>" for path, caption in view.history)
    return f'<div class="auth-history">{items}</div>'


def notice_html(notes=(), warnings=()) -> str:
    """What the last edit said: warnings (refused or failed edits) first, then notes."""
    lines = [f'<li class="auth-warning">{html.escape(w)}</li>' for w in warnings]
    lines += [f'<li class="auth-note">{html.escape(n)}</li>' for n in notes]
    return f'<ul id="auth-notice-list">{"".join(lines)}</ul>' if lines else ""


def neighbour_images(store, view) -> list[Path]:
    """The screenshots of the steps before and after this one, for the browser to load ahead."""
    steps = store.steps(view.trajectory_id)
    around = [steps[i].image for i in (view.position + 1, view.position - 1) if 0 <= i < len(steps)]
    return [path for path in (store.image_path(image) for image in around if image) if path.is_file()]


def render_view(store, cache: Path, session: AnnotatorSession | None, count: int, urls: FileURLs | None = None,
                memory: SessionMemory | None = None, tool: str = "point", notes=(), warnings=(),
                answered: str = "") -> list:
    """Every component of the step view, in the order of VIEW_FIELDS. `notes`, `warnings`: what the edit said;
    `answered`: the browser's token of the edit this answers (static/authoring.js waits for it)."""
    if session is None or session.trajectory_id is None:
        return [gr.update()] * count
    view = session.view(store, cache, draw=False)  # the browser draws the marks
    memory = memory or SessionMemory()
    remembered = memory.of(session.session_id)
    link = (lambda path: urls.url(path)) if urls else str
    choices = [(f"{t} · {p['finished']}/{p['steps']} done · {p['corrections']} corr.", t)
               for t, p in store.progress().items()]
    action = Action.from_dict(view.action)
    correction_choices = [(f"correction {c.id}: {Action.from_dict(c.wrong_action).describe()} → "
                           f"{len(c.recovery)} recovery step(s)", c.id) for c in view.corrections]
    image = edited_image(session, store)
    current = next((c for c in view.corrections if c.id == view.correction_id), None)
    index = session.recovery_index()
    recovery_image = current.recovery[index].image if current and index is not None else (
        current.after_image if current else None)
    panels = {
        "auth-progress": progress_table(store), "auth-share": share_line(store), "auth-states": states_table(view),
        "auth-history": history_html(view, link), "auth-header": header_html(view),
        "auth-coordinate": html.escape(view.coordinate_text), "auth-notice": notice_html(notes, warnings),
        "auth-problems": problems_html(view.problems),
    }
    canvas = canvas_value(
        "auth", link(store.image_path(image)) if image else None, view.width or 1, view.height or 1,
        marks=canvas_marks(session, store, view.action), box=view.target, box_role="target", tool=tool,
        role="step" if view.editing == STEP else ("wrong" if view.editing == WRONG else "recovery"),
        two_clicks=action.kind in ("swipe", "drag"), pending=session.pending_point, key=view.key,
        seq=remembered.get("seq", 0), message=view.needs_screenshot or "", panels=panels,
        preload=[link(path) for path in neighbour_images(store, view)], answered=answered, locked=bool(view.locked))
    fields = set(view.fields)
    labels = [e.get("label", "") for e in view.elements if e.get("label")]
    box_text = ", ".join(f"{v:g}" for v in view.target) if view.target else ""
    remembered["box_text"] = box_text
    return [
        view.key,
        gr.update(choices=choices, value=view.trajectory_id),
        gr.update(choices=view.editing_choices, value=view.editing),
        canvas,
        action.kind,
        gr.update(value=action.text, visible="text" in fields),
        gr.update(value=action.button, visible="button" in fields),
        gr.update(value=action.direction, visible="direction" in fields),
        gr.update(value=action.status, visible="status" in fields),
        view.thinking,
        gr.update(choices=list(view.status_choices), value=view.status, label=f"Status of the {view.editing}"),
        gr.update(choices=correction_choices, value=view.correction_id),
        gr.update(choices=after_choices(store, view, recovery_image), value=recovery_image,
                  label=f"Screenshot of {view.editing if index is not None else 'recovery 1'} (after the error)"),
        gr.update(choices=labels, value=next((e.get("label") for e in view.elements
                                              if view.target and list(e.get("box", [])) == list(view.target)), None),
                  info=None if labels else "This screenshot knows no element boxes: draw the box or type it."),
        box_text,
    ]
