"""Build hook, beside pyproject.toml (which holds all the metadata): ship the top-level kernels/ folder, fixed there
by the design, inside the wheel as mlpx/kernels/, where mlpx.backend.kernel_sources looks first. A source checkout
(and an editable install) reads kernels/ in place."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

KERNEL_SUFFIXES = (".cu", ".cuh", ".h")


class BuildPyWithKernels(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "mlpx" / "kernels"
        self.mkpath(str(target))
        for source in sorted(Path(__file__).resolve().parent.joinpath("kernels").iterdir()):
            if source.suffix in KERNEL_SUFFIXES:
                self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithKernels})
