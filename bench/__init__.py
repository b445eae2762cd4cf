"""mlpx benchmarks: pytest-benchmark suites (``pytest bench/ --benchmark-only``) and the side-by-side runner
(``python -m bench.compare``). See docs/benchmarks/README.md."""
