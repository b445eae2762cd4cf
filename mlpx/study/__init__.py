"""The study application built on the mlpx library: the ``mlpx`` command line (cli, cli_train, cli_info), run
reports and plots, the seed studies' experiments (configurations, sweep, run store, results), the executors that
run them in parallel, and the autoencoder study.

It uses only the library's public or documented entry points (``MLP.fit``, ``mlpx.training.continue_run``,
``mlpx.checkpoint``, ``mlpx.datasets``, ...), so anything it does a user's script can do; the library never imports
from here (tested). The modules' older import paths (``mlpx.cli``, ``mlpx.report``, ``mlpx.experiments``, ...) are
kept as aliases of these modules (mlpx/_moved.py).
"""
