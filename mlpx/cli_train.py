"""Moved to :mod:`mlpx.study.cli_train`; this older path is an alias of that module (mlpx/_moved.py)."""
from ._moved import alias

alias(__name__, "mlpx.study.cli_train")
