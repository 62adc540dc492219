"""Gradio tabs: one module per tab, wiring components to core functions."""
