"""What the recorder needs from torch beyond plain tensors: compiled and wrapped models and
optimizers, hooks that ``torch.compile`` must not trace, dtypes numpy lacks, output trees,
and ``torch.distributed``."""

from __future__ import annotations

import fnmatch
import functools
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "distributed",
    "mean_over_ranks",
    "patterns",
    "match",
    "unwrap_model",
    "unwrap_optimizer",
    "unwrap_optimizers",
    "storage_dtype",
    "set_grad_enabled",
    "eager",
    "leaves",
]


def distributed() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def mean_over_ranks(value: Any) -> float:
    """The mean of a scalar over the ranks of a ``torch.distributed`` run (a collective:
    call it on every rank, in the same order); the value itself when not distributed.

    Under DDP each rank's loss is that of its own shard of the batch: log this mean (on the
    rank that records) for the loss of the whole batch. The reduction runs on the device
    the process group works on (CUDA for NCCL, the CPU for gloo).
    """
    if isinstance(value, torch.Tensor):
        value = value.detach()
    if not distributed():
        return float(value)
    dist = torch.distributed
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.as_tensor(value, dtype=torch.float64, device=device).reshape(())
    dist.all_reduce(t)  # SUM: AVG is not offered by every backend (gloo)
    return float(t) / dist.get_world_size()


# --------------------------------------------------------------------------------------
# Recorder
# --------------------------------------------------------------------------------------


def patterns(spec: str | Sequence[str] | None) -> list[str]:
    """Shell-style patterns from one pattern, a sequence of them, or None (none)."""
    return [] if spec is None else [spec] if isinstance(spec, str) else list(spec)


def match(name: str, patterns: Sequence[str]) -> bool:
    """Whether ``name`` matches any of ``patterns``."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose names the series carry: ``torch.compile``'s ``OptimizedModule``
    (``_orig_mod``) and ``DataParallel`` / ``DistributedDataParallel`` (``module``) are looked
    through."""
    parallel = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    for _ in range(8):
        inner = model._modules.get("_orig_mod", model.__dict__.get("_orig_mod"))
        if isinstance(inner, torch.nn.Module):
            model = inner
        elif isinstance(model, parallel):
            model = model.module
        else:
            break
    return model


def unwrap_optimizer(opt: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside a wrapper (Lightning's ``LightningOptimizer``, accelerate's
    ``AcceleratedOptimizer``): its ``step`` is the one that really updates the parameters."""
    for _ in range(8):
        inner = getattr(opt, "_optimizer", None) or getattr(opt, "optimizer", None)
        if isinstance(inner, torch.optim.Optimizer) and inner is not opt:
            opt = inner
        else:
            break
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(
            f"Recorder: optimizer must be a torch.optim.Optimizer (or a sequence of them), "
            f"got {type(opt).__name__}"
        )
    return opt


def unwrap_optimizers(optimizer: Any) -> list[torch.optim.Optimizer]:
    """The torch optimizers of ``optimizer``: None (none), one, or a list or tuple of them,
    each looked through its wrapper (:func:`unwrap_optimizer`)."""
    if optimizer is None:
        return []
    many = optimizer if isinstance(optimizer, (list, tuple)) else [optimizer]
    return [unwrap_optimizer(o) for o in many]


def storage_dtype(dtype: torch.dtype) -> np.dtype | None:
    """The numpy dtype a tensor of ``dtype`` is stored in (bfloat16: float32, exactly), or
    None where numpy has no equivalent (complex halves, quantized, float8)."""
    if dtype is torch.bfloat16:
        return np.dtype(np.float32)
    try:
        return np.dtype(torch.empty(0, dtype=dtype).numpy().dtype)
    except (TypeError, RuntimeError):
        return None


# torch.set_grad_enabled is a class (a context manager): a call costs about 1 us, its C
# function 0.1 us
set_grad_enabled = getattr(torch._C, "_set_grad_enabled", torch.set_grad_enabled)


def eager(fn: Callable) -> Callable:
    """``fn`` for a hook that must never be traced into a compiled graph.

    Where ``torch.compile`` is at work (tracing the hook inside a compiled model's forward
    or a compiled ``optimizer.step()``, or running a frame eagerly after a graph break with
    its children still to be traced) the hook calls ``fn`` through ``torch.compiler.disable``,
    so that it runs eagerly on real tensors. Otherwise it calls ``fn`` directly: the disable
    wrapper costs 0.5 us a call in a loop and about 10 us after a training step.
    """
    disabled = torch.compiler.disable(fn)
    is_compiling = torch.compiler.is_compiling
    # None outside torch.compile's frames; if this torch lacks it, always go through disable
    callback = getattr(torch._C._dynamo.eval_frame, "get_eval_frame_callback", lambda: True)

    @functools.wraps(fn)
    def hook(*args):
        if is_compiling() or callback() is not None:
            return disabled(*args)
        return fn(*args)

    return hook


def leaves(obj: Any, suffix: str = ""):
    """``(suffix, element)`` for every element of a module output: tensors and the
    non-tensors among them. Tuples and lists by index, mappings by key: ``("", out)``,
    ``("[0]", out[0])``, ``("[1][0]", out[1][0])``, ``("[logits]", out["logits"])``."""
    if isinstance(obj, torch.Tensor):
        yield suffix, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from leaves(value, f"{suffix}[{key}]")
    elif isinstance(obj, (tuple, list)):
        for i, value in enumerate(obj):
            yield from leaves(value, f"{suffix}[{i}]")
    else:
        yield suffix, obj
