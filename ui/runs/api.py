"""Named HTTP endpoints of the Runs tab (gradio_client, scripts): list runs, read one, launch from YAML."""
from __future__ import annotations

import gradio as gr

from lora_core.training.config import ConfigError, load_yaml_text
from lora_core.training.registry import RunError
from ui.runs.access import launch_checked

def api_functions(ctx):
    """Named HTTP endpoints (gradio_client, scripts): list runs, read one, launch from YAML."""
    from lora_core.analysis.curves import diagnose

    def runs_list() -> list[dict]:
        """Every run, newest first: run_id, name, state, step, max_steps, last loss, last eval loss, failure reason."""
        return [{"run_id": s.run_id, "name": s.name, "state": s.state, "step": s.step, "max_steps": s.max_steps,
                 "loss": s.last_loss, "eval_loss": s.eval_loss, "reason": s.reason, "message": s.message}
                for s in ctx.runs.list_runs()]

    def run_view(run_id: str) -> dict:
        """One run: its status.json, metrics.jsonl records, curve diagnosis and eval.json."""
        try:
            folder = ctx.runs.folder(run_id)
            status = ctx.runs.refresh(run_id)
        except RunError as error:
            raise gr.Error(str(error)) from None
        metrics = folder.read_metrics()
        return {"status": status, "metrics": metrics, "diagnosis": [d.as_dict() for d in diagnose(metrics)],
                "evaluation": folder.read_eval()}

    def runs_launch(config_yaml: str, name: str = "", request: gr.Request = None) -> str:
        """Launch a run from YAML in the seed's schema (training.lora / training.sft / training flags) on the demo
        trajectories, after the same checks as the Launch button; returns the run id."""
        try:
            loaded = load_yaml_text(config_yaml or "")
            run_id, _ = launch_checked(ctx, loaded.config, name, None, request, api=True)
        except (ConfigError, RunError, ValueError, RuntimeError, OSError) as error:
            raise gr.Error(str(error)) from None
        return run_id

    return runs_list, run_view, runs_launch

