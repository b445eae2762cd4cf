"""The real CuPy, on a machine without a GPU (CI installs CuPy and its NVRTC wheel, not cuBLAS): every kernel
compiles through CuPy's own NVRTC path; with no device, or without cuBLAS/NVRTC, the backend choice falls back
with the cause, ``backend="cupy"`` and ``require_gpu()`` fail with it, and ``mlpx info`` reports it without a
traceback. Skipped, with the reason, where CuPy is not installed; the no-device tests skip on a GPU machine."""
import re
import types

import pytest

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install 'mlpx[gpu]'; CI installs it)")

import mlpx  # noqa: E402
from mlpx import backend  # noqa: E402
from mlpx.backend import device, kernel_sources  # noqa: E402
from mlpx.study.cli import main  # noqa: E402


def _nvrtc_loads():
    try:
        cupy.cuda.nvrtc.getVersion()
    except Exception as err:  # noqa: BLE001
        return f"NVRTC does not load ({err}): pip install nvidia-cuda-nvrtc-cu12 (CI installs it)"
    return None


def _device_present():
    try:
        return cupy.is_available()
    except Exception:  # noqa: BLE001
        return False


needs_nvrtc = pytest.mark.skipif(_nvrtc_loads() is not None, reason=str(_nvrtc_loads()))
no_device = pytest.mark.skipif(_device_present(), reason="a CUDA device is present: the no-device paths do not run")


@pytest.fixture
def fresh_backend(monkeypatch):
    """No cached ops or library check from earlier tests, restored afterwards."""
    monkeypatch.setattr(backend, "_ops_cache", {})
    monkeypatch.setattr(backend, "_libraries_checked", {})
    monkeypatch.setattr(backend, "_default_backend", None)
    monkeypatch.setattr(backend, "_reported_auto", False)  # "auto" reports once per process
    monkeypatch.delenv("MLPX_BACKEND", raising=False)
    return backend


# ---- every kernel through CuPy's NVRTC ---------------------------------------------------------------------------
@needs_nvrtc
@pytest.mark.parametrize("arch", ["80", "90"])
def test_every_kernel_compiles_through_cupys_nvrtc_with_mlpxs_options(arch):
    result = device.nvrtc_compile(arch)
    expected = [spec.expression(t) for spec, t in kernel_sources.instantiations()]
    assert result["kernels"] == len(expected) == 25
    assert sorted(result["lowered"]) == sorted(expected)
    for spec, t in kernel_sources.instantiations():           # name<float> -> _Z<len>nameIfE..., <double> -> IdE
        mangled = result["lowered"][spec.expression(t)]
        code = {"float": "f", "double": "d", "int": "i"}[t]
        assert mangled.startswith(f"_Z{len(spec.name)}{spec.name}I{code}E"), (spec.expression(t), mangled)
    assert result["binary_bytes"] > 0


@needs_nvrtc
def test_the_check_compiles_with_exactly_the_options_rawmodule_gets(monkeypatch):
    """What NVRTC is given: mlpx's options, CuPy's -ftz=true and its arch flag, the 25 name expressions."""
    from cupy.cuda import compiler

    seen = {}
    original = compiler._NVRTCProgram.compile

    def spy(self, options=(), log_stream=None):
        seen["options"], seen["names"] = tuple(options), tuple(self.name_expressions)
        return original(self, options, log_stream)

    monkeypatch.setattr(compiler._NVRTCProgram, "compile", spy)
    device.nvrtc_compile("90")
    assert {"--fmad=false", "-ftz=true", "-arch=sm_90", "--device-as-default-execution-space"} <= set(seen["options"])
    assert len(seen["names"]) == 25 and "take_rows<int>" in seen["names"]
    assert compiler._get_arch_for_options_for_nvrtc.__name__ != "lookup"   # CuPy's own lookup is back


@needs_nvrtc
def test_a_compile_error_raises_with_nvrtcs_message(monkeypatch):
    broken = "template <typename T> __global__ void bias_act_forward(T* x) { x[0] = no_such_name; }\n"
    monkeypatch.setattr(device, "combined_source", lambda: broken)
    monkeypatch.setattr(device, "instantiations",
                        lambda: [(kernel_sources.KernelSpec("bias_act_forward", (), ("float",)), "float")])
    with pytest.raises(Exception, match="no_such_name"):
        device.nvrtc_compile("80")


# ---- mlpx info --kernels ---------------------------------------------------------------------------------------
@needs_nvrtc
def test_info_kernels_compiles_everything_and_names_the_cache(capsys):
    arch = "80" if _device_present() else None          # without a device: sm_80 and sm_90 by default
    assert main(["info", "--kernels"] + (["--arch", arch] if arch else [])) == 0
    out = capsys.readouterr().out
    assert "25 instantiations" in out
    for sm in (["80"] if arch else ["80", "90"]):
        assert re.search(rf"sm_{sm}: 25 kernels compiled by NVRTC [\d.]+, every name expression lowered, in "
                         rf"[\d.]+ s", out), out
    assert str(device.CupyDevice.cache_dir()) in out


@needs_nvrtc
def test_info_kernels_exits_1_with_the_compilers_message(monkeypatch, capsys):
    source = kernel_sources.combined_source() + "\n__device__ int broken() { return undefined_thing; }\n"
    monkeypatch.setattr(device, "combined_source", lambda: source)
    assert main(["info", "--kernels", "--arch", "90"]) == 1
    err = capsys.readouterr().err
    assert "compiling the kernels failed" in err and "undefined_thing" in err


def test_info_kernels_refuses_a_bad_arch(capsys):
    assert main(["info", "--kernels", "--arch", "hopper"]) == 1
    assert "80,90" in capsys.readouterr().err


# ---- no device: the cause, everywhere ------------------------------------------------------------------------------
@no_device
def test_auto_falls_back_to_numpy_with_the_driver_reason(fresh_backend, capsys):
    name, reason = backend.resolve_backend("auto")
    assert name == "numpy"
    assert "cudaErrorInsufficientDriver" in reason or "no NVIDIA driver" in reason or "device" in reason, reason
    model = mlpx.MLP([4, 3, 2], seed=0)
    assert model.backend == "numpy"
    assert "backend 'auto' chose numpy" in capsys.readouterr().err


@no_device
def test_backend_cupy_raises_the_clear_error(fresh_backend):
    with pytest.raises(RuntimeError, match=r"backend 'cupy' cannot run here: CuPy is installed but"):
        mlpx.MLP([4, 3, 2], seed=0, backend="cupy")


@no_device
def test_require_gpu_names_the_cause(fresh_backend):
    usable, why = backend.cupy_status()
    assert not usable
    with pytest.raises(RuntimeError, match="no GPU backend") as err:
        mlpx.require_gpu()
    assert why in str(err.value) and ("driver" in why or "device" in why)


@no_device
def test_mlpx_info_says_why_without_a_traceback(fresh_backend, capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("cupy:"))
    assert "unavailable: CuPy is installed but" in line
    assert "Traceback" not in out
    assert "cupy_kernel_cache:" in out


# ---- a partial install: CuPy sees a device, but cuBLAS or NVRTC does not load (finding 2) ---------------------
@pytest.fixture
def pretend_device(monkeypatch, fresh_backend):
    """The real CuPy, told there is one device: what follows runs CuPy's real library loading."""
    monkeypatch.setattr(cupy, "is_available", lambda: True)
    monkeypatch.setattr(cupy.cuda.runtime, "getDeviceCount", lambda: 1)
    return fresh_backend


def _cublas_loads():
    try:
        import cupy.cublas  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.skipif(_cublas_loads(), reason="cuBLAS loads here: the missing-cuBLAS install cannot be shown")
def test_without_cublas_auto_falls_back_and_cupy_fails_with_the_reason(pretend_device, capsys):
    usable, why = backend.cupy_status()
    assert not usable and "CuPy found a CUDA device, but" in why and "cuBLAS does not load" in why
    assert "libcublas" in why and "mlpx[gpu]" in why
    assert backend.resolve_backend("auto") == ("numpy", f"backend 'auto' chose numpy: {why}")
    assert mlpx.MLP([4, 3, 2], seed=0).backend == "numpy"
    with pytest.raises(RuntimeError, match="cuBLAS does not load"):
        mlpx.MLP([4, 3, 2], seed=0, backend="cupy")
    with pytest.raises(RuntimeError, match="no GPU backend: .*cuBLAS does not load"):
        mlpx.require_gpu()
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"cupy: unavailable: CuPy found a CUDA device, but .*cuBLAS", out) and "Traceback" not in out


def test_without_nvrtc_auto_falls_back_with_the_reason(pretend_device, monkeypatch):
    def missing():
        raise RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared object")

    monkeypatch.setattr(cupy.cuda, "nvrtc", types.SimpleNamespace(getVersion=missing))
    usable, why = backend.cupy_status()
    assert not usable and "NVRTC does not load" in why and "libnvrtc.so.12" in why
    assert backend.resolve_backend("auto")[0] == "numpy"


def test_the_library_check_runs_once_per_process(pretend_device, monkeypatch):
    calls = []
    monkeypatch.setattr(cupy.cuda, "nvrtc", types.SimpleNamespace(getVersion=lambda: calls.append(1) or (12, 9)))
    for _ in range(3):
        backend.cupy_status()
        backend.resolve_backend("auto")
    assert len(calls) == 1


def test_a_failing_warmup_is_reported_not_raised(pretend_device, monkeypatch):
    """Even when the check passes and the backend then fails (a library, a compile), mlpx info reports it."""
    monkeypatch.setattr(backend, "cuda_libraries_problem", lambda cupy: None)

    def broken(*args, **kwargs):
        raise OSError("libcublasLt.so.12: cannot open shared object file")

    monkeypatch.setattr(device.CupyDevice, "__init__", broken)
    report = backend.backend_report()
    assert report["cupy"].startswith("unavailable: CuPy sees a GPU but mlpx's kernels cannot run: OSError")


# ---- the kernel cache note (finding 3) ------------------------------------------------------------------------------
@pytest.mark.parametrize("version, used", [("13.6.0", False), ("14.0.1", False), ("14.1.0", True),
                                           ("14.2.0", True), ("15.0.0rc1", True)])
def test_info_claims_the_cache_only_where_cupy_uses_it(version, used, tmp_path):
    note = device.cupy_cache_note(version, tmp_path)
    assert str(tmp_path) in note
    assert ("not used" not in note) == used


def test_the_report_states_the_installed_cupys_cache_use():
    note = backend.backend_report()["cupy_kernel_cache"]
    assert f"CuPy {cupy.__version__}" in note


# ---- host reads counted on real CuPy arrays (finding 4) ---------------------------------------------------------
def test_cupy_arrays_get_a_counting_subclass_that_overrides_every_host_read():
    counted = device.counting_array_class(cupy.ndarray)
    assert issubclass(counted, cupy.ndarray)
    present = [name for name in device.HOST_READS if hasattr(cupy.ndarray, name)]
    assert {"get", "item", "tolist", "__float__", "__int__", "__bool__", "__array__"} <= set(present)
    for name in present:
        assert counted.__dict__[name] is not getattr(cupy.ndarray, name), name
