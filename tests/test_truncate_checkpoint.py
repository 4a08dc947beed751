"""scripts/truncate_checkpoint.py: a Meta folder cut to its first N layers, exactly, without touching the source."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import safe_write
import truncate_checkpoint as tc
from make_tiny_checkpoint import expected_shapes
from meta_reference import load_meta_transformer, meta_logits

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "truncate_checkpoint.py"
CKPT = "consolidated.00.pth"

# <|begin_of_text|> and five more ids; any ids below the vocabulary size would do.
TOKENS = [128000, 791, 6864, 315, 9822, 374]

# (config, tied, layers kept): gqa2 has 2 layers, gqa4 has 3.
CASES = [("gqa2", False, 1), ("gqa4", False, 2), ("gqa4", True, 1)]
CASE_IDS = [f"{c}{'-tied' if tied else ''}-keep{n}" for c, tied, n in CASES]


# --------------------------------------------------------------------------- helpers
def load(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / CKPT, map_location="cpu", weights_only=True, mmap=True)


def layer_of(key: str) -> int | None:
    match = re.match(r"layers\.(\d+)\.", key)
    return int(match.group(1)) if match else None


def sha256_tree(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def linked_copy(src: Path, dst: Path) -> Path:
    """DST: a folder of symlinks to SRC's files (the factory's folders are shared and read-only)."""
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).symlink_to(p)
    return dst


@pytest.fixture(scope="module")
def truncated(tmp_path_factory, tiny_checkpoint_factory):
    """truncated(config, tied, n) -> (src, dst, summary), each truncation made once per module."""
    made: dict[tuple, tuple[Path, Path, tc.Summary]] = {}

    def make(config: str, tied: bool, n: int):
        if (config, tied, n) not in made:
            src = tiny_checkpoint_factory(config, tied=tied)
            dst = tmp_path_factory.mktemp("truncated") / f"{config}-{tied}-{n}"
            made[config, tied, n] = (src, dst, tc.truncate_checkpoint(src, dst, n))
        return made[config, tied, n]

    return make


@pytest.fixture(scope="module")
def nb():
    # Read lazily: a notebook being edited breaks only the tests that use its functions.
    from notebook_code import load_notebook_functions

    return load_notebook_functions()


# --------------------------------------------------------------------------- the files
@pytest.mark.parametrize("config, tied, n", CASES + [("gqa4", False, 3)], ids=CASE_IDS + ["gqa4-keep-all"])
def test_kept_tensors_are_bit_identical_and_nothing_else_is_kept(config, tied, n, truncated):
    src, dst, summary = truncated(config, tied, n)
    full, cut = load(src), load(dst)
    n_layers = json.loads((src / "params.json").read_text())["n_layers"]

    expected = [k for k in full if layer_of(k) is None or layer_of(k) < n]
    assert list(cut) == expected  # no extra key, none missing, SRC's order
    assert {layer_of(k) for k in cut} - {None} == set(range(n))
    assert not any(k.startswith(f"layers.{i}.") for k in cut for i in range(n, n_layers))
    assert len(cut) == 2 + (not tied) + 9 * n
    assert ("output.weight" in cut) == (not tied)  # a tied checkpoint stays tied
    for key, tensor in cut.items():
        assert tensor.dtype == full[key].dtype == torch.bfloat16, key
        assert tensor.shape == full[key].shape, key
        assert torch.equal(tensor, full[key]), key
    assert summary.kept_keys == expected
    assert summary.kept_bytes == sum(t.nbytes for t in cut.values())
    assert summary.total_bytes == sum(t.nbytes for t in full.values())


@pytest.mark.parametrize("config, tied, n", CASES, ids=CASE_IDS)
def test_each_saved_tensor_owns_a_compact_storage(config, tied, n, truncated):
    src, dst, summary = truncated(config, tied, n)
    # The source's mmap-loaded tensors each own their storage, like Meta's files: nothing was cloned...
    assert all(tc.is_compact(t) for t in load(src).values())
    assert summary.cloned_keys == []
    # ...and the destination holds the kept bytes and only them (plus the zip's small headers).
    cut = load(dst)
    assert all(t.untyped_storage().nbytes() == t.nbytes and t.storage_offset() == 0 for t in cut.values())
    overhead = (dst / CKPT).stat().st_size - summary.kept_bytes
    assert 0 < overhead < 64 * 1024


def test_views_into_one_storage_are_saved_compactly(tiny_checkpoint_factory, tmp_path):
    # A checkpoint whose tensors are views into one flat buffer: saved as they
    # are, every kept tensor would carry the whole buffer, dropped layers included.
    src_ckpt = tiny_checkpoint_factory("gqa4")
    state = load(src_ckpt)
    flat = torch.cat([t.flatten() for t in state.values()])
    views, offset = {}, 0
    for key, t in state.items():
        views[key] = flat[offset:offset + t.numel()].view(t.shape)
        offset += t.numel()
    src = tmp_path / "views"
    src.mkdir()
    torch.save(views, src / CKPT)
    for name in ("params.json", "tokenizer.model"):
        shutil.copyfile(src_ckpt / name, src / name)
    assert not any(tc.is_compact(t) for t in load(src).values())

    summary = tc.truncate_checkpoint(src, tmp_path / "out", 1)
    assert summary.cloned_keys == summary.kept_keys
    cut = load(tmp_path / "out")
    assert all(t.untyped_storage().nbytes() == t.nbytes for t in cut.values())
    dropped = summary.total_bytes - summary.kept_bytes
    assert (tmp_path / "out" / CKPT).stat().st_size - summary.kept_bytes < min(64 * 1024, dropped)
    for key, tensor in cut.items():
        assert tensor.dtype == state[key].dtype and torch.equal(tensor, state[key]), key


@pytest.mark.parametrize("config, tied, n", CASES, ids=CASE_IDS)
def test_params_json_differs_only_in_n_layers_and_tokenizer_is_copied(config, tied, n, truncated):
    src, dst, _ = truncated(config, tied, n)
    src_text, dst_text = (src / "params.json").read_text(), (dst / "params.json").read_text()
    src_params, dst_params = json.loads(src_text), json.loads(dst_text)
    assert dst_params["n_layers"] == n != src_params["n_layers"]
    assert list(dst_params) == list(src_params)  # key order kept
    assert {**dst_params, "n_layers": src_params["n_layers"]} == src_params
    # The file's text too: only the number changed.
    assert dst_text == src_text.replace(f'"n_layers": {src_params["n_layers"]}', f'"n_layers": {n}')
    assert (dst / "tokenizer.model").read_bytes() == (src / "tokenizer.model").read_bytes()
    assert sorted(p.name for p in dst.iterdir()) == [CKPT, "params.json", "tokenizer.model"]


def test_meta_8b_params_json_keeps_its_exact_text():
    text = (REPO / "Meta-Llama-3-8B" / "params.json").read_text()
    assert '"n_layers": 32,' in text
    assert tc.truncated_params_text(text, 2) == text.replace('"n_layers": 32,', '"n_layers": 2,')


def test_the_source_is_left_untouched(tiny_checkpoint_factory, tmp_path):
    src = tiny_checkpoint_factory("gqa4", tied=True)
    before = sha256_tree(src)
    stats = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in src.iterdir()}
    tc.truncate_checkpoint(src, tmp_path / "out", 2)
    tc.truncate_checkpoint(src, tmp_path / "out", 1, force=True)
    assert sha256_tree(src) == before
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in src.iterdir()} == stats


# --------------------------------------------------------------------------- the model
def hidden_state(nb: dict, folder: Path, n_layers: int, tokens: list[int]) -> torch.Tensor:
    """The residual stream after N_LAYERS layers, computed with the notebook's own functions, in float32."""
    params = json.loads((folder / "params.json").read_text())
    state = load(folder)
    dim, n_heads, n_kv_heads = params["dim"], params["n_heads"], params["n_kv_heads"]
    t = len(tokens)
    x = state["tok_embeddings.weight"][tokens].float()
    freqs_cis = nb["rope_frequencies"](dim // n_heads, t, params["rope_theta"])
    mask = torch.full((t, t), float("-inf")).triu(1)
    for i in range(n_layers):
        w = {short: state[f"layers.{i}.{name}"].float() for short, name in nb["LAYER_TENSORS"].items()}
        x = nb["transformer_layer"](x, w, freqs_cis, mask, n_heads, n_kv_heads, params["norm_eps"])
    return x


@pytest.mark.parametrize("config, tied, n", CASES, ids=CASE_IDS)
def test_hidden_state_after_n_layers_is_the_full_models(config, tied, n, truncated, nb):
    src, dst, _ = truncated(config, tied, n)
    full_n = hidden_state(nb, src, n, TOKENS)
    assert torch.equal(hidden_state(nb, dst, n, TOKENS), full_n)
    # Not vacuous: one more layer of the full model changes the hidden state.
    assert not torch.allclose(hidden_state(nb, src, n + 1, TOKENS), full_n, atol=1e-2)


@pytest.mark.parametrize("config, tied, n", CASES, ids=CASE_IDS)
def test_meta_reference_on_the_truncated_folder(config, tied, n, truncated, nb, meta_parallel):
    src, dst, _ = truncated(config, tied, n)
    params = json.loads((src / "params.json").read_text())
    full = load(src)
    out = full.get("output.weight", full["tok_embeddings.weight"]).float()

    # Meta's model on the truncated folder = the full model's hidden state after
    # N layers, through the final norm and the output layer.
    expected = nb["rms_norm"](hidden_state(nb, src, n, TOKENS), full["norm.weight"].float(), params["norm_eps"]) @ out.T
    truncated_logits = meta_logits(load_meta_transformer(dst, max_seq_len=len(TOKENS)), TOKENS)
    assert truncated_logits.shape == (len(TOKENS), params["vocab_size"])
    assert (truncated_logits - expected).abs().max() < 1e-4

    # The honest point: an N-layer model does not predict what the full model does.
    full_logits = meta_logits(load_meta_transformer(src, max_seq_len=len(TOKENS)), TOKENS)
    assert (full_logits - truncated_logits).abs().max() > 0.5


# --------------------------------------------------------------------------- the CLI
def test_cli_end_to_end(tiny_checkpoint_factory, tmp_path):
    full = tiny_checkpoint_factory("gqa4")
    src = linked_copy(full, tmp_path / "src")
    (tmp_path / "tokenizer_config.json").write_text('{"bos": "<|begin_of_text|>"}\n')
    (src / "tokenizer_config.json").symlink_to(tmp_path / "tokenizer_config.json")
    (src / "checklist.chk").write_text("md5 sums of the full files\n")
    dst = tmp_path / "a" / "b"  # parents are created

    proc = run_cli(src, dst, "--layers", 2)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    cut = load(dst)
    kept_mb = sum(t.nbytes for t in cut.values()) / 1e6
    total_mb = sum(t.nbytes for t in load(full).values()) / 1e6
    assert f"kept 2 of 3 layers: 21 tensors, {kept_mb:.1f} MB of {total_mb:.1f} MB" in proc.stdout.splitlines()
    assert "non-layer tensors: tok_embeddings.weight, norm.weight, output.weight" in proc.stdout
    assert "(n_layers 2)" in proc.stdout
    assert "ignored (not part of the truncated model): checklist.chk" in proc.stdout
    assert sorted(p.name for p in dst.iterdir()) == [CKPT, "params.json", "tokenizer.model", "tokenizer_config.json"]
    assert (dst / "tokenizer_config.json").read_bytes() == (src / "tokenizer_config.json").read_bytes()
    assert list(cut) == [k for k in load(full) if layer_of(k) is None or layer_of(k) < 2]


def test_force_replaces_our_files_cleans_tmp_and_keeps_the_rest(tiny_checkpoint_factory, tmp_path):
    src = tiny_checkpoint_factory("gqa2")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / CKPT).write_bytes(b"old")
    (dst / (CKPT + ".tmp")).write_bytes(b"half a file from a killed run")
    (dst / "tokenizer_config.json").write_text("{}")  # from an earlier source; this one has none
    (dst / "notes.txt").write_text("mine")

    summary = tc.truncate_checkpoint(src, dst, 1, force=True)
    assert sorted(p.name for p in dst.iterdir()) == [CKPT, "notes.txt", "params.json", "tokenizer.model"]
    assert (dst / "notes.txt").read_text() == "mine"
    assert summary.removed_files == ["tokenizer_config.json"]
    assert summary.other_dst_files == ["notes.txt"]
    assert list(load(dst)) == summary.kept_keys


@pytest.mark.parametrize("failure, rc, message", [
    (OSError(28, "No space left on device"), 1, "error: No space left on device"),
    (KeyboardInterrupt(), 130, "interrupted; no output file was left half-written"),
], ids=["disk-full", "ctrl-c"])
def test_a_failed_write_leaves_no_file_behind(failure, rc, message, tiny_checkpoint_factory, tmp_path,
                                              monkeypatch, capsys):
    src = tiny_checkpoint_factory("gqa2")
    real_init = safe_write.TensorWriter.__init__
    calls = []

    class FailingFile:
        """The output file, failing at its 12th write: past the header records, inside the tensor data."""

        def __init__(self, file):
            self.file = file

        def write(self, data):
            calls.append(len(data))
            if len(calls) == 12:
                raise failure
            return self.file.write(data)

    monkeypatch.setattr(safe_write.TensorWriter, "__init__",
                        lambda self, file, bar=None: real_init(self, FailingFile(file), bar))
    assert tc.main([str(src), str(tmp_path / "new"), "--layers", "1"]) == rc
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err and "unexpected pos" not in err
    assert not (tmp_path / "new").exists()  # created by the run, removed again

    # Over a previous result with --force: the previous files are still whole.
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / CKPT).write_bytes(b"the previous checkpoint")
    (previous / "params.json").write_text("{}")
    calls.clear()
    assert tc.main([str(src), str(previous), "--layers", "1", "--force"]) == rc
    assert sorted(p.name for p in previous.iterdir()) == [CKPT, "params.json"]
    assert (previous / CKPT).read_bytes() == b"the previous checkpoint"


def test_peak_anonymous_memory_stays_far_below_the_kept_size(tmp_path):
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs Linux /proc/self/status (RssAnon)")

    def rss_anon() -> int:
        line = next(line for line in status.read_text().splitlines() if line.startswith("RssAnon:"))
        return int(line.split()[1]) * 1024

    # A Meta checkpoint (the script checks it against params.json) with 64 MB tensors: kept (embeddings,
    # output; 16384 x 1024 float32) and dropped (layer 1: 51 MB, its w1, w2, w3 11.5 MB each).
    params = {"dim": 1024, "n_layers": 2, "n_heads": 8, "n_kv_heads": 8, "vocab_size": 16384, "multiple_of": 256,
              "ffn_dim_multiplier": None, "norm_eps": 1e-05, "rope_theta": 500000.0}
    big = 16 * 1024 * 1024
    src = tmp_path / "src"
    src.mkdir()
    state = {name: torch.ones(shape) for name, shape in expected_shapes(params).items()}
    assert state["tok_embeddings.weight"].numel() == state["output.weight"].numel() == big
    kept_bytes = sum(t.nbytes for name, t in state.items() if not name.startswith("layers.1."))
    torch.save(state, src / CKPT)
    del state
    (src / "params.json").write_text(json.dumps(params))

    peak, done = [rss_anon()], threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak.append(rss_anon())
            time.sleep(0.001)

    baseline = rss_anon()
    poller = threading.Thread(target=poll)
    poller.start()
    try:
        summary = tc.truncate_checkpoint(src, tmp_path / "dst", 1)
    finally:
        done.set()
        poller.join()
    assert summary.kept_bytes == kept_bytes > 2 * 4 * big
    # Reading the checkpoint into memory, or copying the kept tensors, would add >= 128 MB.
    assert max(peak) - baseline < summary.kept_bytes / 10


# --------------------------------------------------------------------------- refusals
def make_folder(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


@pytest.mark.parametrize("case, expected", [
    ("existing-dst", r"already exists and is not empty; use --force"),
    ("layers-0", r"--layers 0 is out of range: the source has 2 layers .* between 1 and 2"),
    ("layers-too-many", r"--layers 3 is out of range: the source has 2 layers .* between 1 and 2"),
    ("no-checkpoint", rf"has no {CKPT} \("),
    ("no-params", r"has no params\.json \("),
    ("empty-src", rf"has no params\.json and no {CKPT}"),
    ("missing-src", r"does not exist or is not a directory"),
    ("shards", r"holds 2 shards \(consolidated\.00\.pth \.\.\. consolidated\.01\.pth\); "
               r"merging model-parallel shards is not supported by this script"),
    ("dst-is-src", r"is the source folder"),
    ("dst-is-a-file", r"exists and is not a directory"),
])
def test_refusals_are_clear_errors(case, expected, tiny_checkpoint_factory, tmp_path):
    full = tiny_checkpoint_factory("gqa2")
    src, dst, layers, extra = full, tmp_path / "dst", 1, []
    if case == "existing-dst":
        dst.mkdir()
        (dst / "keep.txt").write_text("precious")
    elif case == "layers-0":
        layers = 0
    elif case == "layers-too-many":
        layers = 3
    elif case == "no-checkpoint":
        src = make_folder(tmp_path, "params.json", "tokenizer.model")
    elif case == "no-params":
        src = make_folder(tmp_path, CKPT, "tokenizer.model")
    elif case == "empty-src":
        src = make_folder(tmp_path)
    elif case == "missing-src":
        src = tmp_path / "nowhere"
    elif case == "shards":
        src = make_folder(tmp_path, "params.json", CKPT, "consolidated.01.pth")
    elif case == "dst-is-src":
        dst, extra = full, ["--force"]
    elif case == "dst-is-a-file":
        dst.write_text("a file")
        extra = ["--force"]
    before = sha256_tree(src) if src.is_dir() else {}

    proc = run_cli(src, dst, "--layers", layers, *extra)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert re.search(expected, proc.stderr), proc.stderr
    assert proc.stdout == ""
    if src.is_dir():
        assert sha256_tree(src) == before
    if case == "existing-dst":
        assert sorted(p.name for p in dst.iterdir()) == ["keep.txt"]
        assert (dst / "keep.txt").read_text() == "precious"
    elif case != "dst-is-src":
        assert not dst.is_dir()


def test_params_and_checkpoint_that_disagree_are_refused(tiny_checkpoint_factory, tmp_path):
    full = tiny_checkpoint_factory("gqa2")  # 2 layers in the checkpoint
    src = tmp_path / "src"
    src.mkdir()
    (src / CKPT).symlink_to(full / CKPT)
    (src / "params.json").write_text(json.dumps({**json.loads((full / "params.json").read_text()), "n_layers": 3}))
    with pytest.raises(tc.TruncateError, match=r"holds layers 0\.\.1 \(2 layers\) but params\.json says n_layers 3"):
        tc.truncate_checkpoint(src, tmp_path / "dst", 1)
    assert not (tmp_path / "dst").exists()
