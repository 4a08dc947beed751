"""scripts/benchmark_memory.py on its ~1 GB fake checkpoint: with mmap, the notebook's forward pass holds far less
anonymous memory than the weights, in both compute dtypes; without mmap, the weights are all in anonymous memory.

Memory is measured, not timed, so it is asserted on; the times the benchmark prints are not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import benchmark_memory as bm
import llama3_files

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "benchmark_memory.py"
CKPT = "consolidated.00.pth"


def run_script(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def fake_1gb(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fake-1gb")
    proc = run_script("--make-fake", out, "--shape", "1gb", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "peak RssAnon while writing" in proc.stdout
    return out


@pytest.fixture(scope="module")
def benchmark_results(fake_1gb) -> dict[tuple[str, str], dict]:
    """The benchmark's parent, as a user runs it: each configuration in its own child process."""
    proc = run_script(fake_1gb, "--configs", "mmap:float32,mmap:bfloat16,no-mmap:bfloat16,mmap:float32:step",
                      "--tokens", "9", "--decode", "1", "--cache", "as-is")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "peak RssAnon GiB" in proc.stdout  # the table
    summary = json.loads(proc.stdout.splitlines()[-1])
    return {(r["load"], r["dtype"]) + (() if r["step"] == "lesson" else (r["step"],)): r for r in summary["results"]}


@pytest.fixture(scope="module")
def int8_1gb(fake_1gb, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fake-1gb-int8") / "int8"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "quantize_checkpoint.py"), str(fake_1gb), str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_8b_shape_is_metas_params_json():
    assert bm.SHAPES["8b"] == json.loads((REPO / "Meta-Llama-3-8B" / "params.json").read_text())


def test_fake_checkpoint_passes_the_notebooks_shape_check(fake_1gb):
    params = json.loads((fake_1gb / "params.json").read_text())
    assert params == bm.SHAPES["1gb"]
    size = (fake_1gb / CKPT).stat().st_size
    assert 0.8e9 < size < 1.2e9

    cfg = llama3_files.Config.from_params(params)
    checkpoint = llama3_files.load_checkpoint(fake_1gb)  # torch.load(..., weights_only=True, mmap=True)
    llama3_files.check_checkpoint(checkpoint, cfg, str(fake_1gb))  # raises on a missing, extra or misshapen tensor
    assert list(checkpoint) == list(bm.expected_shapes(params))  # Meta's key names, in Meta's order
    assert {t.dtype for t in checkpoint.values()} == {torch.bfloat16}
    wq = checkpoint["layers.3.attention.wq.weight"].float()
    assert 0.019 < wq.std() < 0.021 and abs(wq.mean()) < 1e-3
    assert abs(checkpoint["norm.weight"].float().mean() - 1) < 0.01

    # a valid zip, like torch.save's (the CRC-32s were patched), that loads the same without mmap
    with zipfile.ZipFile(fake_1gb / CKPT) as zf:
        assert zf.testzip() is None
        assert zf.namelist()[0] == "consolidated.00/data.pkl"  # torch.save's archive name for this file name
    plain = torch.load(fake_1gb / CKPT, map_location="cpu", weights_only=True)
    assert all(torch.equal(plain[name], checkpoint[name]) for name in ("tok_embeddings.weight", "output.weight"))


def test_make_fake_refuses_to_overwrite(fake_1gb):
    before = os.stat(fake_1gb / CKPT).st_mtime_ns
    proc = run_script("--make-fake", fake_1gb, "--shape", "1gb")
    assert proc.returncode == 1
    assert "refusing to overwrite" in proc.stderr and "--force" in proc.stderr
    assert os.stat(fake_1gb / CKPT).st_mtime_ns == before
    assert sorted(p.name for p in fake_1gb.iterdir()) == [CKPT, "params.json"]  # no temporary files left


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_mmap_forward_holds_less_than_half_the_checkpoint(benchmark_results, dtype):
    r = benchmark_results[("mmap", dtype)]
    assert r["logits_finite"]
    half = r["checkpoint_bytes"] / 2
    # what loading and the forward pass add to the process, and the process's whole anonymous memory
    assert r["peak_anon_added"] < half, f"{r['peak_anon_added'] / 2**30:.2f} GiB added"
    assert r["peak_anon"] < half, f"{r['peak_anon'] / 2**30:.2f} GiB"


def test_without_mmap_the_weights_are_anonymous_memory(benchmark_results):
    """The measurement sees anonymous memory: torch.load without mmap copies all the weights into it."""
    r = benchmark_results[("no-mmap", "bfloat16")]
    if "skipped" in r:
        pytest.skip(r["skipped"])
    assert r["logits_finite"]
    assert r["peak_anon_added"] > 0.9 * r["checkpoint_bytes"]


def test_the_decode_step_on_stored_bf16_weights_holds_little(benchmark_results):
    # section 19's decode step with float32 activations reads the bf16 matrices from the file, never copying one
    r = benchmark_results[("mmap", "float32", "step")]
    assert r["logits_finite"]
    assert r["peak_anon_added"] < r["checkpoint_bytes"] / 4, f"{r['peak_anon_added'] / 2**30:.2f} GiB added"


def test_the_decode_step_on_an_int8_folder_reads_its_pairs_without_dequantizing(int8_1gb):
    proc = run_script(int8_1gb, "--configs", "mmap:float32:step", "--tokens", "5", "--decode", "2", "--cache", "as-is")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (r,) = json.loads(proc.stdout.splitlines()[-1])["results"]
    assert r["step"] == "step" and r["logits_finite"] and len(r["decode_steps_s"]) == 2
    # the output matrix alone would be 0.5 GB dequantized in float32: the pairs are read as they are
    assert r["peak_anon_added"] < 0.25 * 2**30, f"{r['peak_anon_added'] / 2**30:.2f} GiB added"


@pytest.mark.parametrize("text, expected", [
    ("mmap:bfloat16", [("mmap", "bfloat16", "lesson")]),
    ("mmap:float32:compiled,no-mmap:bfloat16:step", [("mmap", "float32", "compiled"), ("no-mmap", "bfloat16", "step")]),
])
def test_configurations_name_the_step(text, expected):
    assert bm.parse_configs(text) == expected


@pytest.mark.parametrize("text", ["mmap", "mmap:bfloat16:fast", "mmap:int8", "mmap:float32:step:x"])
def test_a_bad_configuration_is_refused(text):
    with pytest.raises(ValueError, match="bad configuration"):
        bm.parse_configs(text)
