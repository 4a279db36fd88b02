"""Benchmarks: datasets with gold answers, answer quality, the run spec, the resumable runner and its report.

>>> from tokentrust import bench
>>> result = bench.run(bench.RunSpec(dataset="capitals", limit=200))     # or bench.run("run.toml")
>>> result.metrics["estimators"]["maximum_sequence_probability"]["roc_auc"]
"""

from .runner import RunResult, run
from .spec import RunSpec, load_spec

__all__ = ["RunResult", "RunSpec", "load_spec", "run"]
