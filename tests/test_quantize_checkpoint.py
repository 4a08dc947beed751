"""scripts/quantize_checkpoint.py: Meta's layout with int8 matrices and one scale per row, read by the notebook.

Four layouts (GQA, MQA, tied, Llama 3.1's scaled RoPE) in the packed layout (the default), and GQA in the
plain one: every weight within scale / 2 of the source's, the scales per row (and a check that fails on scales
per column); the packed matrices' bytes are the notebook's speed-up 7 words (pack_int8), which its shifts
unpack (and a check that fails on columns left in place); the int8 folder read by llama3_files and the
notebook's forward gives the logits of Meta's reference model run on the dequantized weights, and section 19's
decode step on the stored weights (notebook_code.use_stored_weights: packed words viewed without a copy,
eager and compiled) gives the lesson's logits; one run of the real notebook on an int8 folder; the script's
refusals; and its memory: it streams.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import llama3_files
import quantize_checkpoint as qc
import truncate_checkpoint
from llama3_files import (Config, Int8Checkpoint, check_checkpoint, choose_dtype, count_parameters, is_int8_matrix,
                          load_checkpoint, read_params)
from make_tiny_checkpoint import expected_shapes
from meta_reference import load_meta_transformer, meta_logits
from notebook_runner import REPO, run_notebook

SCRIPT = REPO / "scripts" / "quantize_checkpoint.py"
CKPT = "consolidated.00.pth"
LAYOUTS = {  # tiny_checkpoint_factory's arguments: bf16 on disk, like Meta's files
    "gqa": {"config": "gqa2"},
    "mqa": {"config": "mqa"},  # n_kv_heads = 1
    "tied": {"config": "gqa2", "tied": True},  # no output.weight
    "scaled-rope": {"config": "gqa2", "use_scaled_rope": True},  # Llama 3.1
    "plain": {"config": "gqa2", "layout": "plain"},  # quantize_checkpoint.py --layout plain: columns in place
}
# <|begin_of_text|> and 23 more ids; any ids below the vocabulary size would do.
TOKENS = [128000, 791, 6864, 315, 9822, 374, 12366, 13, 578, 6864, 315, 9635, 374, 20437, 13, 578, 6864, 315,
          15704, 374, 22463, 13, 578, 6864]


# --------------------------------------------------------------------------- helpers
def load(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / CKPT, map_location="cpu", weights_only=True, mmap=True)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def assert_rows_quantized(w: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, ulps: int = 4) -> None:
    """Q and SCALE quantize W per ROW: one float32 scale per row, every |q · scale - w| <= scale / 2 of its row
    (plus ULPS float32 roundings of the row's largest weight), and scale = max|w_row| / 127 (1 for a zero row)."""
    w = w.float()
    assert q.dtype == torch.int8 and q.shape == w.shape, (q.dtype, q.shape)
    assert scale.dtype == torch.float32 and scale.shape == (w.shape[0],), f"one scale per row, not {scale.shape}"
    error = (q.float() * scale[:, None] - w).abs()
    bound = scale[:, None] * (0.5 + 127 * ulps * torch.finfo(torch.float32).eps)
    assert (error <= bound).all(), f"round-trip error {(error - bound).max():.3g} above scale / 2 of its row"
    largest = w.abs().amax(dim=1)
    assert torch.equal(scale, torch.where(largest == 0, 1.0, largest / 127)), "scale is not max|w_row| / 127"
    assert torch.equal(q.abs().amax(dim=1) == 127, largest > 0), "a row's largest weight is not ±127 · scale"


def per_column(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A broken quantizer: one scale per COLUMN."""
    w = w.float()
    scale = w.abs().amax(dim=0) / 127
    return (w / scale).round().clamp(-127, 127).to(torch.int8), scale


def source_of(src_state: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """What DST's NAME quantizes: SRC's NAME, or for a tied SRC's output.weight its embedding."""
    return src_state.get(name, src_state["tok_embeddings.weight"])


def dequantized_folder(int8_dir: Path, src: Path, out: Path) -> Path:
    """A float32 Meta folder of INT8_DIR's weights as the notebook reads them (q · scale; the embedding and the
    norms as stored), with SRC's params.json: the input of Meta's reference."""
    if not out.is_dir():
        checkpoint = load_checkpoint(int8_dir)
        out.mkdir(parents=True)
        torch.save({name: checkpoint[name].float() for name in checkpoint}, out / CKPT)
        shutil.copyfile(src / "params.json", out / "params.json")
    return out


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, tiny_checkpoint_factory):
    """quantized(layout) -> (src, dst, summary, reference): each layout quantized once per module, and the
    float32 folder of its dequantized weights for Meta's reference."""
    made: dict[str, tuple] = {}

    def make(layout: str):
        if layout not in made:
            args = dict(LAYOUTS[layout])
            storage = args.pop("layout", "packed")
            src = tiny_checkpoint_factory(**args)
            root = tmp_path_factory.mktemp(f"int8-{layout}")
            summary = qc.quantize_checkpoint(src, root / "int8", layout=storage)
            made[layout] = (src, root / "int8", summary, dequantized_folder(root / "int8", src, root / "dequantized"))
        return made[layout]

    return make


@pytest.fixture(scope="module")
def nb():
    from notebook_code import load_notebook_functions

    return load_notebook_functions()


def columns_in_place(q: torch.Tensor, packed: bool, nb: dict) -> torch.Tensor:
    """A stored int8 matrix with every column in its place: a packed one's bytes taken as the notebook's
    speed-up 7 words and unpacked with its shifts (nb["unpack_rows"]), not with llama3_files' own order."""
    return nb["unpack_rows"](q.view(torch.float32)).to(torch.int8) if packed else q


# --------------------------------------------------------------------------- the files
@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_files_follow_the_int8_format(layout, quantized):
    src, dst, summary, _ = quantized(layout)
    source, stored = load(src), load(dst)
    tied = "output.weight" not in source
    names = list(source) + (["output.weight"] if tied else [])
    assert list(stored) == [n for name in names for n in (name, name + "_scale")[:1 + is_int8_matrix(name)]]
    assert summary.quantized == [name for name in names if is_int8_matrix(name)]
    assert len(summary.quantized) == 7 * json.loads((src / "params.json").read_text())["n_layers"] + 1
    for name in names:
        if is_int8_matrix(name):
            assert stored[name].dtype == torch.int8 and stored[name].shape == source_of(source, name).shape
            assert stored[name + "_scale"].dtype == torch.float32
            assert stored[name + "_scale"].shape == (stored[name].shape[0],)
        else:  # the embedding and the norms: exactly as stored
            assert stored[name].dtype == source[name].dtype == torch.bfloat16
            assert torch.equal(stored[name], source[name])
    assert summary.output_bytes == sum(t.nbytes for t in stored.values())
    assert (dst / CKPT).stat().st_size - summary.output_bytes < 64 * 1024
    # params.json: the source's text, one key added
    src_text, dst_text = (src / "params.json").read_text(), (dst / "params.json").read_text()
    quantization = "int8" if layout == "plain" else "int8-packed"
    assert summary.quantization == quantization
    assert list(json.loads(dst_text).items()) == [*json.loads(src_text).items(), ("quantization", quantization)]
    assert dst_text == src_text.rstrip()[:-1].rstrip() + f',\n  "quantization": "{quantization}"\n}}\n'
    assert (dst / "tokenizer.model").read_bytes() == (src / "tokenizer.model").read_bytes()
    assert sorted(p.name for p in dst.iterdir()) == [CKPT, "params.json", "tokenizer.model"]
    assert 0 < summary.max_error <= 1 / 254 + 1e-6


def test_meta_8b_params_json_keeps_its_exact_text():
    text = (REPO / "Meta-Llama-3-8B" / "params.json").read_text()
    assert qc.quantized_params_text(text) == text.replace('"rope_theta": 500000.0}',
                                                          '"rope_theta": 500000.0, "quantization": "int8-packed"}')
    assert qc.quantized_params_text(text, "int8") == text.replace('"rope_theta": 500000.0}',
                                                                  '"rope_theta": 500000.0, "quantization": "int8"}')


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_matrix_is_quantized_per_row_within_half_a_scale(layout, quantized, nb):
    src, dst, summary, _ = quantized(layout)
    source, stored, checkpoint = load(src), load(dst), load_checkpoint(dst)
    packed = summary.quantization == "int8-packed"
    for name in summary.quantized:
        q, scale = columns_in_place(stored[name], packed, nb), stored[name + "_scale"]
        assert_rows_quantized(source_of(source, name), q, scale)
        if packed:  # the bytes are the notebook's words: pack_int8 of the matrix with its columns in place
            assert torch.equal(stored[name].view(torch.int32), nb["pack_int8"](q).view(torch.int32))
        assert torch.equal(checkpoint[name], q.float() * scale[:, None])  # read back: every column in its place


def test_the_packed_check_fails_on_columns_left_in_place(nb, tiny_checkpoint_factory):
    w = load(tiny_checkpoint_factory("gqa2"))["layers.0.feed_forward.w1.weight"]
    q, scale = qc.quantize_rows(w)
    assert_rows_quantized(w, columns_in_place(llama3_files.interleave_columns(q), True, nb), scale)
    with pytest.raises(AssertionError, match="round-trip error .* above scale / 2 of its row"):
        assert_rows_quantized(w, columns_in_place(q, True, nb), scale)  # stored in place, read as packed


def test_the_packed_layout_uses_the_notebooks_word_size(nb):
    assert llama3_files.INT8_PER_WORD == nb["PER_WORD"]
    q = torch.arange(-64, 64, dtype=torch.int8).view(4, 32)
    assert torch.equal(llama3_files.deinterleave_columns(llama3_files.interleave_columns(q)), q)
    assert torch.equal(llama3_files.interleave_columns(q), nb["interleave"](q))


@pytest.mark.parametrize("name", ["layers.0.attention.wq.weight", "layers.0.feed_forward.w1.weight"],
                         ids=["square", "not-square"])
def test_the_row_check_fails_on_scales_per_column(name, tiny_checkpoint_factory):
    w = load(tiny_checkpoint_factory("gqa2"))[name]
    assert_rows_quantized(w, *qc.quantize_rows(w))  # the converter's quantizer passes
    q, scale = per_column(w)
    if w.shape[0] == w.shape[1]:  # a scale per column has the shape of one per row: the values fail
        with pytest.raises(AssertionError, match="round-trip error .* above scale / 2 of its row"):
            assert_rows_quantized(w, q, scale)
    else:
        with pytest.raises(AssertionError, match="one scale per row"):
            assert_rows_quantized(w, q, scale)


def test_a_row_of_zeros_gets_a_positive_scale():
    w = torch.randn(4, 8)
    w[2] = 0
    q, scale = qc.quantize_rows(w)
    assert scale[2] == 1.0 and (q[2] == 0).all() and (scale > 0).all()
    assert_rows_quantized(w, q, scale)


# --------------------------------------------------------------------------- the model
@pytest.mark.parametrize("layout", LAYOUTS)
def test_forward_on_the_int8_folder_equals_meta_on_the_dequantized_weights(layout, quantized, nb, meta_parallel):
    src, dst, _, reference_dir = quantized(layout)
    cfg = Config.from_params(read_params(dst))
    checkpoint = load_checkpoint(dst)
    assert isinstance(checkpoint, Int8Checkpoint) and cfg.quantization == checkpoint.quantization
    check_checkpoint(checkpoint, cfg, f"{dst}/")
    ours = nb["forward"](nb["Model"](checkpoint, cfg, torch.device("cpu"), torch.float32), TOKENS)

    reference = meta_logits(load_meta_transformer(reference_dir, max_seq_len=len(TOKENS)), TOKENS)[-1]
    assert ours.dtype == torch.float32 and ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)
    # Not vacuous: the source's own logits differ by the quantization's error.
    original = meta_logits(load_meta_transformer(src, max_seq_len=len(TOKENS)), TOKENS)[-1]
    assert (original - ours).abs().max() > 1e-3


def test_the_notebook_runs_on_an_int8_folder(quantized, meta_parallel, tmp_path):
    _, dst, _, reference_dir = quantized("tied")
    saved = run_notebook(tmp_path, MODEL_DIR=str(dst), MAX_NEW_TOKENS=2)
    assert not saved["tied"]  # the int8 folder has its own output.weight: the quantized embedding
    reference = meta_logits(load_meta_transformer(reference_dir, max_seq_len=saved["T"]), saved["prompt_tokens"])[-1]
    torch.testing.assert_close(saved["next_token_logits"], reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("layout, compiled", [("gqa", False), ("gqa", True), ("tied", True), ("plain", False)],
                         ids=["packed", "packed-compiled", "tied-packed-compiled", "plain"])
def test_the_decode_step_on_the_stored_int8_weights_gives_the_lessons_logits(layout, compiled, quantized):
    from notebook_code import load_notebook_functions, use_stored_weights

    _, dst, summary, _ = quantized(layout)
    cfg, checkpoint = Config.from_params(read_params(dst)), load_checkpoint(dst)
    lesson, ns = load_notebook_functions(), load_notebook_functions()
    reference = lesson["Model"](checkpoint, cfg, torch.device("cpu"), torch.float32)  # dequantized as read
    model = use_stored_weights(ns, ns["Model"](checkpoint, cfg, torch.device("cpu"), torch.float32), compiled)
    q, scale = ns["layer_weights"](model, 0)["w1"]
    stored = checkpoint.int8("layers.0.feed_forward.w1.weight")[0]
    if summary.quantization == "int8-packed":  # the file's bytes as words, not a copy of them
        assert q.dtype == torch.float32 and q.data_ptr() == stored.data_ptr()
    else:
        assert q.dtype == torch.int8
    torch._dynamo.reset()
    cache, ref_cache = ns["new_kv_cache"](model, len(TOKENS)), lesson["new_kv_cache"](reference, len(TOKENS))
    prompt = len(TOKENS) - 2
    for start, n in [(0, prompt), (prompt, 1), (prompt + 1, 1)]:  # the prompt, then two decode steps
        torch.testing.assert_close(ns["forward"](model, TOKENS[start:start + n], start, cache),
                                   lesson["forward"](reference, TOKENS[start:start + n], start, ref_cache),
                                   atol=1e-4, rtol=0)


def test_int8_checkpoint_reads_shapes_and_counts_without_dequantizing(quantized, monkeypatch, nb):
    src, dst, summary, _ = quantized("gqa")
    checkpoint, stored = load_checkpoint(dst), load(dst)
    assert list(checkpoint) == list(load(src)) and len(checkpoint) == len(load(src))
    name = "layers.1.attention.wk.weight"
    q, scale = checkpoint.int8(name)
    assert torch.equal(q, stored[name]) and torch.equal(scale, stored[name + "_scale"])
    assert checkpoint.int8("norm.weight") is None and torch.equal(checkpoint["norm.weight"], stored["norm.weight"])
    expected = columns_in_place(q, True, nb).float() * scale[:, None]  # "gqa" is packed
    assert torch.equal(checkpoint[name], expected) and checkpoint[name].dtype == torch.float32
    with pytest.raises(KeyError):
        checkpoint[name + "_scale"]

    monkeypatch.setattr(Int8Checkpoint, "__getitem__", lambda self, n: pytest.fail(f"dequantized {n}")
                        if is_int8_matrix(n) else self.state[n])
    assert "output.weight" in checkpoint and name + "_scale" not in checkpoint
    assert llama3_files.tensor_shape(checkpoint, name) == checkpoint.shape(name) == tuple(q.shape)
    assert count_parameters(checkpoint) == count_parameters(load(src))
    assert choose_dtype(None, checkpoint)[0] == torch.float32
    check_checkpoint(checkpoint, Config.from_params(read_params(dst)), str(dst))


def test_truncating_an_int8_folder_keeps_it_int8(quantized, tmp_path):
    _, dst, _, _ = quantized("gqa")
    truncate_checkpoint.truncate_checkpoint(dst, tmp_path / "cut", 1)
    cfg = Config.from_params(read_params(tmp_path / "cut"))
    checkpoint = load_checkpoint(tmp_path / "cut")
    assert cfg.quantization == checkpoint.quantization == "int8-packed" and cfg.n_layers == 1
    check_checkpoint(checkpoint, cfg, str(tmp_path / "cut"))


# --------------------------------------------------------------------------- the CLI
def run_main(argv: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = qc.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_cli_end_to_end(tiny_checkpoint_factory, tmp_path):
    src = tiny_checkpoint_factory("gqa2", tied=True)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(src), str(tmp_path / "a" / "int8")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == ("quantized 15 matrices to int8 with one float32 scale per row, columns interleaved four to "
                        "a word (the packed layout) (SRC is tied: output.weight is the int8 copy of "
                        "tok_embeddings.weight)")
    source_bytes = sum(t.nbytes for t in load(src).values())
    assert lines[1].startswith(f"tensors: {qc.human_size(source_bytes)} in SRC (bfloat16) -> ")
    assert lines[2] == "kept as stored: tok_embeddings.weight, norm.weight and the layers' 4 norms"
    assert lines[3].startswith("largest round-trip error |q·scale - w|: 0.39") and "at most 1/254 = 0.394%" in lines[3]
    assert lines[4].startswith(f"wrote {tmp_path / 'a' / 'int8'}: {CKPT}, params.json (\"quantization\": \"int8-packed\"), "
                               "tokenizer.model in ")


@pytest.mark.parametrize("case, expected", [
    ("html-page", "is an HTML page, not a checkpoint"),
    ("missing-src", "does not exist or is not a directory"),
    ("dst-is-src", "is the source folder; choose another folder"),
    ("non-empty-dst", "already exists and is not empty; use --force"),
    ("already-int8", 'params.json says "quantization": "int8-packed": {src} is already an int8 checkpoint'),
    ("int8-without-params", "holds int8 weights and their scales (layers.0.attention.wq.weight_scale, ...): it is "
                            "already an int8 checkpoint"),
    ("nan-weight", "layers.1.attention.wo.weight in {src}/consolidated.00.pth holds NaN (not a number) at [7, 3], "
                   "and a weight must be a finite number"),
])
def test_refusals_are_one_line_exit_2_and_write_nothing(case, expected, tiny_checkpoint_factory, quantized, tmp_path,
                                                        capsys):
    good = tiny_checkpoint_factory("gqa2")
    src, dst, extra = tmp_path / "src", tmp_path / "dst", []
    shutil.copytree(good, src)
    if case == "html-page":
        (src / CKPT).write_bytes(b"<!DOCTYPE html>\n<html><body>403 Forbidden</body></html>\n")
    elif case == "missing-src":
        shutil.rmtree(src)
    elif case == "dst-is-src":
        dst, extra = src, ["--force"]
    elif case == "non-empty-dst":
        dst.mkdir()
        (dst / "notes.txt").write_text("mine")
    elif case in ("already-int8", "int8-without-params"):
        shutil.rmtree(src)
        shutil.copytree(quantized("gqa")[1], src)
        if case == "int8-without-params":
            (src / "params.json").write_text((good / "params.json").read_text())
    elif case == "nan-weight":  # in the last block read: the tensors before it were written already
        weights = torch.load(good / CKPT, weights_only=True)
        weights["layers.1.attention.wo.weight"][7, 3] = float("nan")
        torch.save(weights, src / CKPT)
    before = snapshot(tmp_path)

    rc, out, err = run_main([src, dst, *extra], capsys)
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert expected.format(src=src) in err, err
    assert snapshot(tmp_path) == before  # nothing written, nothing left half-written


def test_the_packed_layout_refuses_a_matrix_whose_columns_do_not_fill_words():
    state = {"tok_embeddings.weight": torch.zeros(8, 6), "layers.0.attention.wq.weight": torch.zeros(6, 6)}
    with pytest.raises(qc.QuantizeError) as caught:
        qc.output_layout(state, "int8-packed")
    assert str(caught.value) == ("layers.0.attention.wq.weight has 6 columns, not a multiple of 4: the packed layout "
                                 "stores 4 weights to a word; write this model with --layout plain")
    assert qc.output_layout(state, "int8")[1].quantized == ["layers.0.attention.wq.weight", "output.weight"]


def test_a_disk_that_fills_up_while_quantizing_leaves_nothing(tiny_checkpoint_factory, tmp_path, monkeypatch, capsys):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)  # reserving the output file's blocks
    rc, out, err = run_main([tiny_checkpoint_factory("gqa2"), tmp_path / "new" / "dst"], capsys)
    assert rc == 1 and out == ""
    assert err.startswith("error: No space left on device while writing") and "nothing was written" in err
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_our_files_and_keeps_the_rest(tiny_checkpoint_factory, tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / CKPT).write_bytes(b"old")
    (dst / (CKPT + ".tmp")).write_bytes(b"half a file from a killed run")
    (dst / "tokenizer_config.json").write_text("{}")  # from an earlier source; this one has none
    (dst / "notes.txt").write_text("mine")
    summary = qc.quantize_checkpoint(tiny_checkpoint_factory("gqa2"), dst, force=True)
    assert sorted(p.name for p in dst.iterdir()) == [CKPT, "notes.txt", "params.json", "tokenizer.model"]
    assert summary.removed_files == ["tokenizer_config.json"] and summary.other_dst_files == ["notes.txt"]
    assert isinstance(load_checkpoint(dst), Int8Checkpoint)


# --------------------------------------------------------------------------- memory
def test_it_streams_peak_anonymous_memory_stays_far_below_one_float32_matrix(tmp_path, monkeypatch):
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs Linux /proc/self/status (RssAnon)")

    def rss_anon() -> int:
        line = next(line for line in status.read_text().splitlines() if line.startswith("RssAnon:"))
        return int(line.split()[1]) * 1024

    # float32, 64 MB embedding and output (16384 x 1024): quantizing output.weight whole would copy it (64 MB)
    params = {"dim": 1024, "n_layers": 1, "n_heads": 8, "n_kv_heads": 8, "vocab_size": 16384, "multiple_of": 256,
              "norm_eps": 1e-05, "rope_theta": 500000.0}
    src = tmp_path / "src"
    src.mkdir()
    generator = torch.Generator().manual_seed(0)
    state = {name: torch.randn(shape, generator=generator) for name, shape in expected_shapes(params).items()}
    torch.save(state, src / CKPT)
    matrix_bytes = state["output.weight"].nbytes
    del state
    (src / "params.json").write_text(json.dumps(params))
    monkeypatch.setattr(qc, "BLOCK_BYTES", 2**20)  # 1 MiB of float32 rows at a time

    peak, done = [rss_anon()], threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak.append(rss_anon())
            time.sleep(0.001)

    baseline = rss_anon()
    poller = threading.Thread(target=poll)
    poller.start()
    try:
        summary = qc.quantize_checkpoint(src, tmp_path / "dst")
    finally:
        done.set()
        poller.join()
    assert matrix_bytes == 64 * 2**20 and summary.output_bytes > matrix_bytes
    assert max(peak) - baseline < matrix_bytes / 4, f"{(max(peak) - baseline) / 2**20:.0f} MiB"
