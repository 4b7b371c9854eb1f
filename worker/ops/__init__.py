"""Image operations: pure functions over Pillow images and numpy arrays, one per catalogue op."""

from worker.ops import analysis, filters, geometry, ml, tone
from worker.ops.registry import DRAFTS, OPS

__all__ = ["DRAFTS", "OPS", "analysis", "filters", "geometry", "ml", "tone"]
