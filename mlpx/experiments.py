"""Moved to :mod:`mlpx.study.experiments`; this older path (and ``mlpx.experiments.store`` etc.) is an alias of that
package and its modules (mlpx/_moved.py)."""
from ._moved import alias

alias(__name__, "mlpx.study.experiments",
      ("configs", "index", "results", "run_key", "runs", "schedule", "store", "suite"))
