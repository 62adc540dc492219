"""The synthetic demo: a cloud-drive Android app drawn with Pillow, and its trajectories.

model: the data classes and JSON loading; canvas and widgets: drawing; screens and trajectories:
the content; build: `ensure_demo_data(workspace)`, which draws the demo once and then reads it back.
"""

from demo.build import ensure_demo_data
from demo.model import DEMO_VERSION, DemoData, DemoScreen, DemoStep, DemoTrajectory, Element

__all__ = ["DEMO_VERSION", "DemoData", "DemoScreen", "DemoStep", "DemoTrajectory", "Element", "ensure_demo_data"]
