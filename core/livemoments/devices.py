"""Choosing the device and precision: CUDA (bf16, else fp16), Apple MPS (fp16), CPU (fp32)."""

from __future__ import annotations

import torch

from core.api import DeviceUnavailable

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" picks CUDA, then MPS, then the CPU; an explicit device that is missing is an error
    the worker treats as "defer", not "fail"."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"device {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"device {name!r} requested but there are only "
                f"{torch.cuda.device_count()} CUDA devices"
            )
    elif device.type == "mps" and not _mps_available():
        raise DeviceUnavailable(f"device {name!r} requested but Apple MPS is not available")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailable(f"unsupported device {name!r}")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """ "auto": bf16 on CUDA cards that support it, else fp16; fp16 on MPS; fp32 on the CPU."""
    name = (name or "auto").lower()
    if name != "auto":
        if name not in _DTYPES:
            raise ValueError(f"unknown dtype {name!r}; one of auto, {', '.join(sorted(_DTYPES))}")
        return _DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32
