"""The CUDA kernels build: with nvcc for sm_80 and sm_90 without register spills, and with g++ for the CPU
emulation, cached by a hash of the sources and rebuilt when a source changes."""
import re
import shutil
import subprocess

import pytest

from mlpx.backend import emulated, kernel_sources

from conftest import needs_gxx

ARCHS = ("80", "90")


@pytest.mark.nvcc
def test_kernels_compile_with_nvcc_for_sm80_and_sm90_without_spills(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc (the CUDA compiler) is not installed: cannot check the GPU build")
    unit = tmp_path / "mlpx_kernels.cu"
    unit.write_text(kernel_sources.combined_source() + "\n" + kernel_sources.explicit_instantiations())
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    result = subprocess.run([nvcc, "-fmad=false", "-Xptxas", "-v", *gencode, "-c", str(unit),
                             "-o", str(tmp_path / "k.o")], capture_output=True, text=True)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "warning" not in log.lower(), log[-4000:]
    compiled = re.findall(r"Compiling entry function '(\w+)' for '(sm_\d+)'", log)
    expected = {(spec.name, t) for spec, t in kernel_sources.instantiations()}
    for arch in ARCHS:
        names = [name for name, sm in compiled if sm == f"sm_{arch}"]
        assert len(names) == len(expected), f"sm_{arch}: {len(names)} entry functions, expected {len(expected)}"
        for spec_name in {name for name, _ in expected}:
            itanium = f"{len(spec_name)}{spec_name}I"               # _Z9take_rowsIfE...: name<...>
            assert any(itanium in mangled for mangled in names), f"{spec_name} missing for sm_{arch}"
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    assert len(spills) == len(expected) * len(ARCHS)
    assert all(stores == "0" and loads == "0" for stores, loads in spills), log
    assert not re.search(r"[1-9]\d* bytes stack frame", log), "a kernel uses local memory (stack frame)"


@pytest.fixture
def private_kernels(tmp_path, monkeypatch):
    """A copy of kernels/ and an empty build cache, so a test can edit sources and watch the cache."""
    folder = tmp_path / "kernels"
    shutil.copytree(kernel_sources.kernels_dir(), folder)
    monkeypatch.setattr(kernel_sources, "kernels_dir", lambda: folder)
    monkeypatch.setattr(emulated, "kernels_dir", lambda: folder)
    monkeypatch.setenv("MLPX_KERNEL_CACHE", str(tmp_path / "cache"))
    kernel_sources.combined_source.cache_clear()
    yield folder
    kernel_sources.combined_source.cache_clear()


@needs_gxx
def test_cpu_build_is_cached_and_rebuilt_when_a_source_changes(private_kernels):
    first, seconds = emulated.build_library()
    assert first.is_file() and seconds > 0
    again, seconds_again = emulated.build_library()
    assert again == first and seconds_again == 0.0                    # cached: no second compile
    source = private_kernels / "gather.cu"
    source.write_text(source.read_text() + "\n// an edit\n")
    kernel_sources.combined_source.cache_clear()
    rebuilt, seconds_rebuilt = emulated.build_library()
    assert rebuilt != first and rebuilt.is_file() and seconds_rebuilt > 0
    assert sorted(p.name for p in rebuilt.parent.iterdir()) == sorted([first.name, rebuilt.name])  # no leftovers


@needs_gxx
def test_cpu_build_failure_shows_the_compiler_error(private_kernels):
    (private_kernels / "gather.cu").write_text("this is not C++;\n")
    kernel_sources.combined_source.cache_clear()
    with pytest.raises(RuntimeError, match="compiling the kernels for the CPU failed"):
        emulated.build_library()
