"""The controller runtime: work queue, jitter and workers that drive reconcilers."""
