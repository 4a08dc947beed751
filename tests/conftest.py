"""Shared fixtures: Meta's reference model harness and tiny random checkpoints."""

from __future__ import annotations

import inspect
import os

if "PYTEST_XDIST_WORKER" in os.environ:
    # Two test processes share two cores: one thread each (and in the notebook kernels and scripts they start,
    # which inherit this), so that no process's thread pool waits on a core the other one holds.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
from pathlib import Path

import pytest
import torch

if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)  # in case torch was imported before the line above set OMP_NUM_THREADS

import meta_reference
from make_tiny_checkpoint import make_tiny_checkpoint


@pytest.fixture(scope="session")
def meta_parallel():
    """torch.distributed (gloo, world size 1) + fairscale model parallel, once per session."""
    meta_reference.init_model_parallel()


@pytest.fixture(scope="session")
def tiny_checkpoint_factory(tmp_path_factory):
    """factory(config="gqa2", seed=0, dtype=torch.bfloat16, tied=False, use_scaled_rope=False) -> Path.

    Each distinct set of arguments is written once per session and shared; treat
    the returned directory as read-only.
    """
    cache: dict[tuple, Path] = {}
    signature = inspect.signature(make_tiny_checkpoint)

    def factory(config: str = "gqa2", **kw) -> Path:
        bound = signature.bind(None, config=config, **kw)
        bound.apply_defaults()
        args = {k: v for k, v in bound.arguments.items() if k not in ("out_dir", "force")}
        if isinstance(args["dtype"], str):
            args["dtype"] = getattr(torch, args["dtype"])
        key = tuple(sorted(args.items(), key=lambda item: item[0]))
        if key not in cache:
            cache[key] = make_tiny_checkpoint(tmp_path_factory.mktemp(f"ckpt_{config}"), **args)
        return cache[key]

    return factory
