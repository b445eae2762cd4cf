"""Moved to :mod:`mlpx.study.plot`; this older path is an alias of that module (mlpx/_moved.py)."""
from ._moved import alias

alias(__name__, "mlpx.study.plot")
