from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import core
from core import registry
from core.api import Diagnostics, RestoreError, RestoreRequest, RestoreResult


def test_importing_core_does_not_import_torch_or_daemon():
    code = (
        "import sys, core; import core.tiling, core.flow, core.degrade, core.colorfix; "
        "bad = [m for m in ('torch', 'diffusers', 'daemon') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_available_lists_lazy_names():
    names = core.available()
    assert {"guided", "livemoments", "bicubic"} <= set(names)
    assert names == sorted(names)


def test_register_and_restore_through_the_entry_point():
    calls = []

    @registry.register("test-echo")
    class Echo:
        name = "test-echo"

        def __init__(self, **options):
            calls.append(options)

        def restore(self, request: RestoreRequest) -> RestoreResult:
            return RestoreResult(request.reference.copy(), Diagnostics(tiles=1))

    try:
        ref = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
        req = RestoreRequest(
            target=np.zeros((10, 15, 3), np.float32), reference=ref, restorer="test-echo"
        )
        res = core.restore(req, answer=42)
        assert calls == [{"answer": 42}]
        assert res.image.dtype == np.float32 and res.image.shape == (20, 30, 3)
        np.testing.assert_allclose(res.image, ref / 255.0, atol=1e-6)
        assert res.diagnostics.timings["total"] >= 0
        assert res.diagnostics.peak_memory_bytes > 0
        # registering another object under a taken name is refused
        with pytest.raises(ValueError):
            registry.register("test-echo")(lambda **kw: None)
    finally:
        registry._FACTORIES.pop("test-echo", None)


def test_unknown_restorer_and_bad_input_raise_restore_error():
    with pytest.raises(RestoreError, match="unknown restorer"):
        core.get_restorer("no-such-thing")
    req = RestoreRequest(
        target=np.zeros((4, 4), np.float32), reference=np.full((8, 8, 3), np.nan, np.float32)
    )
    with pytest.raises(RestoreError, match="NaN"):
        core.restore(req)
    req = RestoreRequest(target=np.zeros((4, 4, 2), np.float32), reference=np.zeros((8, 8, 3)))
    with pytest.raises(RestoreError, match="target"):
        core.restore(req)


def test_lazy_module_that_fails_to_register_is_reported(monkeypatch):
    monkeypatch.setitem(registry._LAZY_MODULES, "ghost", "core.tiling")
    with pytest.raises(RestoreError, match="did not register"):
        registry.get_restorer("ghost")
    monkeypatch.setitem(registry._LAZY_MODULES, "ghost2", "core.does_not_exist")
    with pytest.raises(RestoreError, match="cannot be loaded"):
        registry.get_restorer("ghost2")
