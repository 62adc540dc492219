"""The Qwen3-VL pipeline: geometry, coordinates, chat rendering, labels, model loading. No gradio."""
