"""Authoring GUI-agent trajectories and error → correction data: store, import, validation, export.

No gradio here: the tab (ui/authoring.py) and the CLI (`python -m authoring`) both call these modules.
"""
