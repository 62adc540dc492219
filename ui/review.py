"""The team panel of the Authoring tab: join, claim, submit, review, assign, second copies and agreement.

Wiring only: the workflow lives in authoring/review.py and authoring/agreement.py. Every refusal is shown
as one sentence inside the panel (not a toast), and nothing is changed then.
"""
from __future__ import annotations

import html
import sqlite3
import time
from dataclasses import dataclass

import gradio as gr

from authoring import review as desk
from authoring.agreement import agreement_report

# The annotator's name, remembered per browser (like the recipe in ui/recipe.py).
NAME_KEY = "lora-workbench-annotator"
SAVE_NAME_JS = (f"(name) => {{ try {{ localStorage.setItem('{NAME_KEY}', name || ''); }} catch (error) {{}} "
                "return name; }")
# As the js= of an event whose first input is the name box: the handler receives the remembered name.
RESTORE_NAME_JS = (f"(...values) => {{ let saved = ''; try {{ saved = localStorage.getItem('{NAME_KEY}') || ''; }} "
                   "catch (error) {} return [saved || values[0] || '', ...values.slice(1)]; }")

CSS = """
.review-table-wrap { overflow-x: auto; max-width: 100%; }
table.review-table { border-collapse: collapse; font-size: 0.85em; width: 100%; table-layout: fixed; }
table.review-table td, table.review-table th {
    border: 1px solid var(--border-color-primary); padding: 2px 6px; overflow-wrap: anywhere; }
.review-error { color: #b00; } .review-ok { color: #080; }
.step-state-done { color: #080; } .step-state-draft { color: #a60; }
"""
STATE_WORDS = {"open": "open", "submitted": "waiting for review", "accepted": "accepted",
               "returned": "returned to annotator"}


def remember_annotator_name(blocks: gr.Blocks, name_box: gr.Textbox) -> None:
    """Fill the name box from the browser's memory on load and remember it on every change of it.

    Where another load handler reads the box, give that handler js=RESTORE_NAME_JS instead of relying on
    this load, so it gets the remembered name itself."""
    name_box.change(None, [name_box], None, js=SAVE_NAME_JS)
    blocks.load(None, [name_box], [name_box], js=RESTORE_NAME_JS)


def _table(headers: list[str], rows: list[list[str]], elem_id: str, empty: str, attrs: list[str] | None = None) -> str:
    if not rows:
        return f'<div id="{elem_id}" class="review-empty">{html.escape(empty)}</div>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(f"<tr {attrs[i] if attrs else ''}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for i, row in enumerate(rows))
    return (f'<div class="review-table-wrap"><table class="review-table" id="{elem_id}"><thead><tr>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table></div>")


def step_state_table(store, trajectory_id: str) -> str:
    """Each step, wrong action and recovery step of a trajectory with its own status (draft / done …)."""
    rows, attrs = [], []
    for row in desk.step_states(store, trajectory_id):
        status = html.escape(row["status"])
        part = html.escape(row["part"] if row["correction"] is None else f"correction {row['correction']}: {row['part']}")
        rows.append([str(row["step"]), part, html.escape(row["action"]),
                     f'<span class="step-state-{status.replace(" ", "-")}">{status}</span>'])
        attrs.append(f'data-step="{row["step"]}" data-part="{html.escape(row["part"])}" data-status="{status}"')
    return _table(["step", "part", "action", "status"], rows, "step-states", "No steps.", attrs)


def queue_html(store, name: str) -> str:
    try:
        mine = desk.queue(store, name)
    except desk.ReviewRefused:
        return '<div id="review-queue">Join the team to get a queue.</div>'
    rows = [[html.escape(r.trajectory_id), STATE_WORDS[r.state], html.escape(r.comment if r.state == "returned" else ""),
             html.escape(r.copy_of or "")] for r in mine]
    attrs = [f'data-trajectory="{html.escape(r.trajectory_id)}" data-state="{r.state}"' for r in mine]
    return _table(["trajectory", "state", "reviewer's comment", "copy of"], rows, "review-queue",
                  f"{name} has no trajectory yet: take the next unassigned one.", attrs)


def pending_html(store, name: str) -> str:
    try:
        member = desk.member(store, name)
    except desk.ReviewRefused:
        return '<div id="review-pending"></div>'
    if member.role != "reviewer":
        return '<div id="review-pending">Reviewers see the trajectories waiting for review here.</div>'
    waiting = desk.review_queue(store, name)
    rows = [[html.escape(r.trajectory_id), html.escape(r.assignee), html.escape(r.task)] for r in waiting]
    attrs = [f'data-trajectory="{html.escape(r.trajectory_id)}"' for r in waiting]
    return _table(["trajectory", "annotator", "task"], rows, "review-pending", "Nothing is waiting for review.", attrs)


def team_html(store) -> str:
    team = desk.members(store)
    if not team:
        return '<div id="review-team">Nobody has joined the team yet.</div>'
    names = ", ".join(f"{html.escape(m.name)}{' (reviewer)' if m.role == 'reviewer' else ''}" for m in team)
    return f'<div id="review-team"><b>Team:</b> {names}</div>'


def agreement_html(store, trajectory_id: str | None) -> str:
    rows, summary = agreement_report(store, trajectory_id or None)
    if not summary.pairs:
        return ('<div id="review-agreement">No second-annotator copies yet: give a trajectory to a second annotator '
                "as a copy to compare their clicks.</div>")
    if not rows:
        return (f'<div id="review-agreement">{summary.pairs} pair(s), but no copy step is saved done yet '
                f"({summary.waiting} waiting): steps are compared once the second annotator saves them.</div>")
    cells = [[html.escape(r.original), html.escape(r.copy), str(r.step), html.escape(f"{r.first_kind} / {r.second_kind}"),
              "yes" if r.types_agree else "no", "—" if r.distance is None else f"{r.distance:.1f}"] for r in rows]
    attrs = [f'data-step="{r.step}" data-distance="{"" if r.distance is None else r.distance}" '
             f'data-agree="{str(r.types_agree).lower()}"' for r in rows]
    mean = "—" if summary.mean_distance is None else f"{summary.mean_distance:.1f} px"
    median = "—" if summary.median_distance is None else f"{summary.median_distance:.1f} px"
    line = (f'<div id="review-agreement-summary" data-mean="{summary.mean_distance}" data-type-agreement='
            f'"{summary.type_agreement}">{summary.pairs} pair(s), {summary.steps} steps: click distance mean {mean}, '
            f"median {median} (abs-original pixels, {summary.points_compared} points); action types agree on "
            f"{summary.type_agreement:.0%} of steps; {summary.waiting} copy step(s) not saved done yet.</div>")
    return line + _table(["original", "copy", "step", "types", "agree", "distance px"], cells, "review-agreement",
                         "", attrs)


def message_html(text: str, ok: bool) -> str:
    return f'<div id="review-message" class="{"review-ok" if ok else "review-error"}">{html.escape(text)}</div>'


@dataclass
class ReviewSection:
    """What the Authoring tab wires to: open requests (a trajectory to show in the editor) and changes."""

    open_request: gr.Textbox  # "trajectory_id#nonce"; its .change asks the editor to open that trajectory
    changed: gr.Textbox  # "trajectory_id#nonce" after each workflow change (submit, accept, …)
    trajectory: gr.Dropdown

    @staticmethod
    def _run(handler):
        def run(*values):
            *inputs, request = values
            return handler(*inputs, (request or "").split("#", 1)[0])
        return run

    def on_open(self, handler, inputs, outputs, **kwargs) -> None:
        """handler(*inputs, trajectory_id) runs when the panel asks the editor to open a trajectory."""
        self.open_request.change(self._run(handler), [*inputs, self.open_request], outputs, **kwargs)

    def on_change(self, handler, inputs, outputs, **kwargs) -> None:
        """handler(*inputs, trajectory_id) runs after a workflow change of that trajectory (e.g. to lock the editor)."""
        self.changed.change(self._run(handler), [*inputs, self.changed], outputs, **kwargs)


def _who(request, typed: str | None) -> str:
    """The login name under --auth, else the typed one (empty stays empty: the desk asks for a name)."""
    return (getattr(request, "username", None) or (typed or "")).strip()


def _nonce(trajectory_id: str) -> str:
    return f"{trajectory_id}#{time.time_ns()}"


def build_review_section(ctx, annotator: gr.Textbox, current_trajectory: gr.Dropdown | None = None) -> ReviewSection:
    """The team panel; `annotator` is the tab's name box, `current_trajectory` (optional) the editor's choice."""
    with gr.Accordion("Team: queue, review and agreement", open=False, elem_id="review-root") as root:
        message = gr.HTML(elem_id="review-message-box")
        with gr.Row():
            role = gr.Dropdown(list(desk.ROLES), value="annotator", label="Join as", elem_id="review-role", scale=1)
            join = gr.Button("Join the team", elem_id="review-join", size="sm", scale=1)
            team = gr.HTML(elem_id="review-team-box")
        gr.Markdown("**My queue**")
        with gr.Row():
            claim = gr.Button("Take the next unassigned trajectory", elem_id="review-claim", size="sm")
            refresh = gr.Button("Refresh", elem_id="review-refresh", size="sm")
        mine = gr.HTML(elem_id="review-queue-box")
        with gr.Row():
            trajectory = gr.Dropdown([], label="Trajectory", elem_id="review-trajectory", scale=2)
            open_button = gr.Button("Open in the editor", elem_id="review-open", size="sm", scale=1)
            submit = gr.Button("Submit for review", variant="primary", elem_id="review-submit", size="sm", scale=1)
        with gr.Row():
            member = gr.Dropdown([], label="Team member", elem_id="review-member", scale=2)
            assign = gr.Button("Assign to them", elem_id="review-assign", size="sm", scale=1)
            copy = gr.Button("Give them a second copy", elem_id="review-copy", size="sm", scale=1)
        gr.Markdown("**Waiting for review** (reviewers)")
        pending = gr.HTML(elem_id="review-pending-box")
        with gr.Row():
            comment = gr.Textbox(label="Review comment (what to fix)", lines=2, elem_id="review-comment", scale=3)
            accept = gr.Button("Accept", variant="primary", elem_id="review-accept", size="sm", scale=1)
            reject = gr.Button("Reject: back to the annotator", variant="stop", elem_id="review-reject", size="sm",
                               scale=1)
        gr.Markdown("**Agreement** of second-annotator copies")
        agreement_button = gr.Button("Show agreement (selected trajectory, or all pairs)", elem_id="review-agreement-run",
                                     size="sm")
        agreement = gr.HTML(elem_id="review-agreement-box")
        open_request = gr.Textbox(visible="hidden", elem_id="review-open-request")
        changed = gr.Textbox(visible="hidden", elem_id="review-changed")

    panel = [team, mine, trajectory, member, pending]

    def panel_values(name: str, chosen: str | None) -> list:
        store = ctx.store
        everything = desk.reviews(store)
        choices = [(f"{r.trajectory_id} · {STATE_WORDS[r.state]}" + (f" · {r.assignee}" if r.assignee else ""),
                    r.trajectory_id) for r in everything]
        ids = {r.trajectory_id for r in everything}
        people = [m.name for m in desk.members(store)]
        return [team_html(store), queue_html(store, name) if name else '<div id="review-queue">Type your name.</div>',
                gr.update(choices=choices, value=chosen if chosen in ids else None), gr.update(choices=people),
                pending_html(store, name)]

    def show(typed, chosen, request: gr.Request):
        return panel_values(_who(request, typed), chosen)

    def act(work, success):
        """Run one workflow action: a refusal is shown as its sentence; the panel is redrawn either way."""
        def handler(typed, chosen, other, text, request: gr.Request):
            name = _who(request, typed)
            opened, changed_value = gr.update(), gr.update()
            try:
                result = work(name, chosen, other, text)
                note = success(name, chosen, other, result)
                ok = True
                if isinstance(result, desk.Review):
                    chosen = result.trajectory_id
                    changed_value = _nonce(result.trajectory_id)
                    if work is claim_work:
                        opened = _nonce(result.trajectory_id)
            except (desk.ReviewRefused, ValueError, LookupError) as error:
                note, ok = str(error), False
            except sqlite3.Error as error:
                note, ok = f"The store could not be changed ({error}); nothing was saved. Try again in a moment.", False
            return [message_html(note, ok), *panel_values(name, chosen), opened, changed_value]
        return handler

    def need(chosen):
        if not chosen:
            raise desk.ReviewRefused("Choose a trajectory first.")
        return chosen

    def claim_work(name, chosen, other, text):
        found = desk.claim_next(ctx.store, name)
        if found is None:
            raise desk.ReviewRefused("No unassigned trajectory is left; ask a reviewer for more work.")
        return found

    actions = {
        join: (lambda name, chosen, other, text: desk.add_member(ctx.store, name, other),
               lambda name, chosen, other, result: f"{result.name} joined the team as {result.role}."),
        claim: (claim_work, lambda name, chosen, other, result: f"{result.trajectory_id} is yours now; it opens in the editor."),
        submit: (lambda name, chosen, other, text: desk.submit(ctx.store, need(chosen), name),
                 lambda name, chosen, other, result: f"{result.trajectory_id} was submitted for review."),
        assign: (lambda name, chosen, other, text: desk.assign(ctx.store, need(chosen), other or "", name),
                 lambda name, chosen, other, result: f"{result.trajectory_id} is assigned to {result.assignee}."),
        copy: (lambda name, chosen, other, text: desk.give_copy(ctx.store, need(chosen), other or "", name),
               lambda name, chosen, other, result: f"{result.assignee} got {result.trajectory_id}, a blind copy of "
                                                   f"{result.copy_of}."),
        accept: (lambda name, chosen, other, text: desk.accept(ctx.store, need(chosen), name, text),
                 lambda name, chosen, other, result: f"{result.trajectory_id} is accepted."),
        reject: (lambda name, chosen, other, text: desk.reject(ctx.store, need(chosen), name, text),
                 lambda name, chosen, other, result: f"{result.trajectory_id} went back to {result.assignee} "
                                                     "with your comment."),
    }
    outputs = [message, *panel, open_request, changed]
    for button, (work, success) in actions.items():
        other = role if button is join else member
        button.click(act(work, success), [annotator, trajectory, other, comment], outputs)

    def open_chosen(chosen):
        if not chosen:
            return message_html("Choose a trajectory first.", False), gr.update()
        return message_html(f"{chosen} opens in the editor.", True), _nonce(chosen)

    open_button.click(open_chosen, [trajectory], [message, open_request])
    agreement_button.click(lambda chosen: agreement_html(ctx.store, chosen), [trajectory], [agreement])
    root.expand(show, [annotator, trajectory], panel)  # drawn when opened: no work at page load
    refresh.click(show, [annotator, trajectory], panel)
    annotator.blur(show, [annotator, trajectory], panel)
    annotator.submit(show, [annotator, trajectory], panel)
    if current_trajectory is not None:
        current_trajectory.change(show, [annotator, current_trajectory], panel)
    return ReviewSection(open_request, changed, trajectory)
