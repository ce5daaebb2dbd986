"""The memory plan: estimate a run's peak memory before it loads anything, and fit the run to a budget."""

from prefalign.memory.estimate import MemoryPlan, Settings, Workload, estimate_memory
from prefalign.memory.shape import ModelShape, shape_from_config, shape_of

__all__ = ["MemoryPlan", "ModelShape", "Settings", "Workload", "estimate_memory", "shape_from_config", "shape_of"]
