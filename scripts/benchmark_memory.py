"""Measure the memory and time of the notebook's own forward pass on a Meta-format checkpoint.

Usage:
    python scripts/benchmark_memory.py --make-fake models/fake-8b --shape 8b [--seed 0] [--force]
    python scripts/benchmark_memory.py models/fake-8b [--tokens 17] [--decode 3] [--cache warm|cold|as-is]
        [--configs mmap:bfloat16,mmap:float32,no-mmap:bfloat16,no-mmap:float32] [--json-out FILE]
        [--memory-limit-gib GIB]    (a configuration may be LOAD:DTYPE:STEP, STEP in lesson, step, compiled)

The benchmark runs the notebook's functions (read from the notebook by scripts/notebook_code.py, so it
measures exactly the code a reader runs) on a checkpoint folder (consolidated.*.pth + params.json; no
tokenizer: the prompt is T random token ids from a fixed seed). For each configuration

    load     mmap     torch.load(..., weights_only=True, mmap=True), the notebook's load_checkpoint
             no-mmap  torch.load(..., map_location="cpu", weights_only=True), the original tutorial's way
    dtype    float32 or bfloat16, the compute dtype given to the notebook's Model

it reports the load time (torch.load + the notebook's check of the shapes; its check of every value, which
reads the whole file, is done once by the parent and not timed), the time of the forward pass over a
T-token prompt (the prefill of the KV cache: all layers, as in the notebook's generate), the time per token
of greedy decoding with the KV cache, and the process's peak RSS and peak anonymous memory (RssAnon).

Every configuration runs in a fresh child process (`--child`, which prints one JSON line), so that the
peaks of one cannot hide in another's; the parent prints a table and, last, one JSON line with everything.

How memory is measured (Linux /proc):
  * RssAnon is the process's anonymous resident memory: heap, tensors it allocated, torch.load's copies
    without mmap. Pages of a memory-mapped checkpoint are file-backed (RssFile): they are the page cache,
    shared and reclaimable, and count in RSS but not in RssAnon. The kernel keeps no peak of RssAnon, so a
    background thread reads /proc/self/status every --interval-ms (10 ms) and keeps the maximum; each phase
    (load, forward, decode) also reads it at its start and end. Torch releases the GIL in its kernels, so
    the thread keeps sampling during long operations, but an allocation that lives shorter than the
    interval between two samples can be missed: the peak is a lower bound, low by at most one short-lived
    buffer (the notebook's linear() converts at most CHUNK_BYTES of a matrix at a time).
  * Peak RSS is the kernel's exact VmHWM; it is reset at the start of each phase by writing 5 to
    /proc/self/clear_refs (if the kernel refuses, the process-wide VmHWM is reported). With mmap it
    includes every page of the file the process touched, i.e. ~the checkpoint's size once all layers ran:
    that is page cache the kernel can drop and re-read, not memory the process owns.
  * "anon +" is the increase of RssAnon over the child's value just before loading (Python, torch and the
    notebook's imports), i.e. what the checkpoint and the forward pass add.

Page cache: a forward pass with mmap reads the whole checkpoint; if it is not in the page cache, that is a
disk read, and its speed, not the model's, decides the time. With --cache warm (the default) the parent
reads the file once before every configuration so that each starts with it cached (if it fits in memory:
the checkpoint's size and the free memory are printed first); --cache cold drops it from the page cache
first (posix_fadvise DONTNEED); --cache as-is leaves it. Each child reports the fraction of the file that
was resident when it started (mincore, like vmtouch) and the bytes it read from the disk (/proc/self/io).

--make-fake DIR --shape SHAPE writes a checkpoint of random bf16 weights (N(0, 0.02); norms 1 + N(0, 0.02))
with the exact key names and shapes of Meta's files, for benchmarking without Meta's weights: "8b" is Llama 3
8B's params.json (16 GB), "1gb" a ~1 GB model with the 8B's vocabulary, for quick runs and the tests. It
needs little memory: torch.save writes the file's structure without the tensors' bytes
(torch.serialization.skip_data), then the file is mapped with MAP_SHARED and each tensor is filled in place,
a block of rows at a time, and the zip's CRC-32 fields are patched so that the file is a valid zip, like
torch.save's. Its peak RssAnon is measured and printed.

Section 19's decode step: a configuration LOAD:DTYPE:STEP with STEP "step" runs the notebook's decode step
(forward_fixed: RoPE in real numbers, a fixed-size cache) on the weights as they are stored in the file, converted
as the products read them into activations of DTYPE (notebook_code.use_stored_weights): bf16 matrices for a Meta
folder, the (q, scale) pairs of an int8 folder written by scripts/quantize_checkpoint.py; "compiled" compiles it
with torch.compile. The compilation happens in the first decode step, which is timed with the others: the JSON's
decode_steps_s lists every step, and "decode s/tok (after 1st)" in the table leaves the first one out. E.g.
    python scripts/benchmark_memory.py models/fake-8b --configs mmap:float32:step,mmap:float32:compiled --decode 4
    python scripts/benchmark_memory.py models/fake-8b-int8 --configs mmap:float32:step,mmap:float32:compiled

A smaller laptop: --memory-limit-gib 12 runs each configuration in a cgroup (v1) memory group of 12 GiB, which
counts the page cache its process reads into as well as its anonymous memory (root needed); with --cache cold the
file is read inside that limit, so a checkpoint bigger than the limit is read again from the disk at every token.

Bad input: MODEL_DIR is loaded and checked first with the notebook's own load_checkpoint_file, read_params and
check_checkpoint (torch.load(..., weights_only=True, mmap=True): a pickle that would run code is refused without
running it); a damaged or truncated file, an HTML page saved as the checkpoint, or a params.json that is missing,
not JSON, lacks a key or does not fit a tensor's shape, or a NaN or an infinity in a tensor ends in one `error: ...`
line naming the file, key or tensor (exit status 2). --make-fake refuses a DIR that exists and is not empty unless
--force, and a disk without the checkpoint's size + 1 GB free; the file is reserved (posix_fallocate) and written
under DIR/.partial/, renamed into place when complete, so a full disk leaves nothing half-written.

Run every measurement alone on the machine (e.g. under `flock /tmp/bench.lock ...`): other processes'
memory traffic changes the times.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import mmap
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from make_tiny_checkpoint import expected_shapes
from llama3_files import InputError, check_checkpoint, load_checkpoint, merge_shards
from notebook_code import load_checked_checkpoint, load_notebook_functions, use_stored_weights
from safe_write import (DiskSpaceError, check_free_space, cleaned_up_on_failure, human_size, is_disk_full, make_parents,
                        patch_zip_crcs,
                        write_failure_message, write_text)

GiB = 2**30
CHECKPOINT_NAME = "consolidated.00.pth"
LOADS = ("mmap", "no-mmap")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEFAULT_CONFIGS = "mmap:bfloat16,mmap:float32,no-mmap:bfloat16,no-mmap:float32"
STEPS = ("lesson", "step", "compiled")  # the lesson's forward; section 19's decode step (use_stored_weights); compiled

_LLAMA3_COMMON = {"vocab_size": 128256, "norm_eps": 1e-05, "rope_theta": 500000.0}
SHAPES: dict[str, dict] = {
    # Meta-Llama-3-8B/params.json, exactly: 8.03e9 parameters, 16.06 GB in bf16
    "8b": {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
           "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0},
    # the 8B's vocabulary, head size (128) and GQA ratio (4), smaller elsewhere: 0.48e9 parameters, 0.96 GB
    "1gb": {"dim": 1024, "n_layers": 16, "n_heads": 8, "n_kv_heads": 2, "multiple_of": 256,
            "ffn_dim_multiplier": 1.3, **_LLAMA3_COMMON},
}
FAKE_STD = 0.02  # the weights' standard deviation: activations stay finite over all layers
FILL_BYTES = 64 * 2**20  # float32 random numbers generated at a time when filling a tensor

NO_MMAP_HEADROOM = 2 * GiB  # without mmap, run only if MemAvailable >= checkpoint size + this


# --------------------------------------------------------------------------- /proc readings
def read_status() -> dict[str, int]:
    """RssAnon, RssFile, VmRSS, VmHWM, ... of this process from /proc/self/status, in bytes."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if rest.endswith("kB\n"):
                values[name] = int(rest.split()[0]) * 1024
    return values


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def read_meminfo() -> dict[str, int]:
    with open("/proc/meminfo") as f:
        return {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.rstrip().endswith("kB")}


def busy_cpu_seconds() -> float:
    """CPU time all processes have spent busy since boot, in core-seconds (/proc/stat; idle and iowait excluded)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(kernel_only: bool = False) -> float:
    """CPU time of this process, all threads; with KERNEL_ONLY, the system time (page faults, zeroing, ...)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_stime if kernel_only else usage.ru_utime + usage.ru_stime


def read_io() -> dict[str, int]:
    """read_bytes: what this process caused to be read from the disk (page-cache hits are not counted)."""
    try:
        with open("/proc/self/io") as f:
            return {k: int(v) for k, v in (line.split(": ") for line in f)}
    except OSError:
        return {}


class PeakSampler:
    """Samples RssAnon from a background thread; take_peak() returns the peak since its previous call."""

    def __init__(self, interval_s: float = 0.01):
        self.interval_s = interval_s
        self.samples = 0
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-anon-sampler", daemon=True)

    def _sample(self) -> int:
        anon = read_status()["RssAnon"]
        with self._lock:
            self._peak = max(self._peak, anon)
            self.samples += 1
        return anon

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def take_peak(self) -> int:
        self._sample()
        with self._lock:
            peak, self._peak = self._peak, 0
        self._sample()  # the next period starts from the current value
        return peak

    def __enter__(self) -> "PeakSampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- page cache
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_MAP_FAILED = ctypes.c_void_p(-1).value


def resident_bytes(path: Path, window: int = GiB) -> int:
    """How many bytes of PATH are in the page cache now (mincore on a read-only mapping, like vmtouch)."""
    page = mmap.PAGESIZE
    size = path.stat().st_size
    resident = 0
    with open(path, "rb") as f:
        for start in range(0, size, window):
            length = min(window, size - start)
            addr = _libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), start)
            if addr in (None, _MAP_FAILED):
                raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
            try:
                vec = (ctypes.c_ubyte * ((length + page - 1) // page))()
                if _libc.mincore(addr, length, vec) != 0:
                    raise OSError(ctypes.get_errno(), f"mincore on {path} failed")
                resident += int((np.frombuffer(vec, dtype=np.uint8) & 1).sum()) * page
            finally:
                _libc.munmap(addr, length)
    return min(resident, size)


def warm_page_cache(path: Path) -> float:
    """Read PATH once so that it is in the page cache; returns the seconds it took."""
    start = time.perf_counter()
    buffer = bytearray(64 * 2**20)
    with open(path, "rb", buffering=0) as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while f.readinto(buffer):
            pass
    return time.perf_counter() - start


def drop_page_cache(path: Path) -> None:
    """Ask the kernel to drop PATH's clean pages from the page cache."""
    with open(path, "rb") as f:
        os.fdatasync(f.fileno())  # dirty pages cannot be dropped
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


class BadCheckpoint(Exception):
    """The notebook's InputError about MODEL_DIR: a file that is missing, damaged, unsafe or does not fit."""


def checkpoint_paths(model_dir: Path) -> list[Path]:
    if not model_dir.is_dir():
        raise BadCheckpoint(f"{model_dir} is not a directory (make a checkpoint there with "
                            f"--make-fake {model_dir} --shape 1gb)")
    paths = sorted(model_dir.glob("consolidated.*.pth"))
    missing = ([] if (model_dir / "params.json").is_file() else ["params.json"]) + ([] if paths else [CHECKPOINT_NAME])
    if missing:
        raise BadCheckpoint(f"{' and '.join(str(model_dir / name) for name in missing)} missing: MODEL_DIR must hold "
                            f"Meta's consolidated.*.pth and params.json (make a checkpoint with "
                            f"--make-fake DIR --shape 1gb)")
    return paths


def load_checked(model_dir: Path, values: bool = True):
    """(Config, checkpoint) as the notebook loads and checks them (notebook_code.load_checked_checkpoint: a
    pickle that would run code is refused without running it); BadCheckpoint names the file, key or tensor.

    VALUES=False skips the check of every value (NaN, inf), which reads the whole file: the parent does it once.
    """
    try:
        return load_checked_checkpoint(model_dir, values)
    except InputError as exc:
        raise BadCheckpoint(str(exc)) from None


# --------------------------------------------------------------------------- one configuration (the child)
def measure(model_dir: Path, load: str, dtype_name: str, n_tokens: int, n_decode: int, seed: int = 0,
            interval_s: float = 0.01, log=lambda msg: print(msg, file=sys.stderr, flush=True),
            step: str = "lesson") -> dict:
    """Load MODEL_DIR one way, run a T-token forward and N_DECODE decode steps; times and memory peaks.

    Meant to run in a fresh process (see --child): its peaks are this process's.
    """
    if load not in LOADS:
        raise ValueError(f"unknown load {load!r}; choose from {LOADS}")
    if dtype_name not in DTYPES:
        raise ValueError(f"unknown dtype {dtype_name!r}; choose from {sorted(DTYPES)}")
    paths = checkpoint_paths(model_dir)
    size = sum(p.stat().st_size for p in paths)
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; choose from {STEPS}")
    result: dict = {"load": load, "dtype": dtype_name, "step": step, "tokens": n_tokens, "decode_steps": n_decode,
                    "checkpoint_bytes": size, "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cached_at_start": sum(resident_bytes(p) for p in paths) / size,
                    "mem_available_at_start": read_meminfo()["MemAvailable"]}
    if load == "no-mmap" and result["mem_available_at_start"] < size + NO_MMAP_HEADROOM:
        result["skipped"] = (f"without mmap the weights need ~{size / GiB:.1f} GiB of anonymous memory, but only "
                             f"{result['mem_available_at_start'] / GiB:.1f} GiB is available "
                             f"(want {NO_MMAP_HEADROOM / GiB:.0f} GiB to spare)")
        return result

    nb = load_notebook_functions()  # the notebook's own functions, classes and constants
    # the parent checked the folder, values included; reading every value again here would fill the page cache
    # that --cache cold emptied, and time a read of the whole file as "load"
    cfg, _ = load_checked(model_dir, values=False)
    dtype = DTYPES[dtype_name]
    tokens = torch.randint(cfg.vocab_size, (n_tokens,), generator=torch.Generator().manual_seed(seed)).tolist()

    phases: dict[str, dict] = {}
    busy_at_start, own_at_start, wall_at_start = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    kernel_at_start = own_cpu_seconds(kernel_only=True)
    result["loadavg_at_start"] = os.getloadavg()[0]
    with PeakSampler(interval_s) as sampler:
        hwm_resets = reset_peak_rss()
        start_status = read_status()
        result["anon_at_start"] = start_status["RssAnon"]
        sampler.take_peak()
        last = {"io": read_io(), "faults": resource.getrusage(resource.RUSAGE_SELF).ru_majflt}

        def end_phase(name: str, seconds: float) -> None:
            status, io = read_status(), read_io()
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
            phases[name] = {"seconds": seconds, "peak_anon": sampler.take_peak(), "peak_rss": status["VmHWM"],
                            "rss_file_at_end": status["RssFile"],
                            "disk_read_bytes": io.get("read_bytes", 0) - last["io"].get("read_bytes", 0),
                            "major_faults": faults - last["faults"]}
            last.update(io=io, faults=faults)
            reset_peak_rss()
            log(f"  {name}: {seconds:.2f} s, peak RssAnon {phases[name]['peak_anon'] / GiB:.2f} GiB")

        t0 = time.perf_counter()
        if load == "mmap":
            checkpoint = load_checkpoint(model_dir)  # the notebook's way: torch.load(..., mmap=True)
        else:
            shards = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
            checkpoint = merge_shards(shards, paths, cfg.quantization)  # int8: an Int8Checkpoint, as with mmap
        check_checkpoint(checkpoint, cfg, str(model_dir), values=False)  # the shapes (the values: see above)
        model = nb["Model"](checkpoint, cfg, torch.device("cpu"), dtype)
        if step != "lesson":  # section 19's decode step, the weights converted as they are read (compiled: later)
            model = use_stored_weights(nb, model, compiled=step == "compiled")
        end_phase("load", time.perf_counter() - t0)

        # generate()'s loop, greedy, timed step by step: the prefill is the forward over all T tokens
        cache = nb["new_kv_cache"](model, n_tokens + n_decode)
        t0 = time.perf_counter()
        logits = nb["forward"](model, tokens, 0, cache)
        end_phase("forward", time.perf_counter() - t0)
        finite = bool(torch.isfinite(logits).all())
        steps = []
        for i in range(n_decode):
            token = int(logits.argmax())
            t0 = time.perf_counter()
            logits = nb["forward"](model, [token], n_tokens + i, cache)
            steps.append(time.perf_counter() - t0)
            finite &= bool(torch.isfinite(logits).all())
        end_phase("decode", sum(steps))

    wall = time.perf_counter() - wall_at_start
    others = (busy_cpu_seconds() - busy_at_start) - (own_cpu_seconds() - own_at_start)
    result.update(
        others_cpu_cores=max(0.0, others) / wall, own_cpu_cores=(own_cpu_seconds() - own_at_start) / wall,
        own_kernel_cpu_s=own_cpu_seconds(kernel_only=True) - kernel_at_start,
        loadavg_at_end=os.getloadavg()[0],
        load_s=phases["load"]["seconds"], forward_s=phases["forward"]["seconds"],
        decode_s_per_token=sum(steps) / len(steps) if steps else None, decode_steps_s=steps,
        peak_anon=max(p["peak_anon"] for p in phases.values()),
        peak_rss=max(p["peak_rss"] for p in phases.values()) if hwm_resets else read_status()["VmHWM"],
        peak_rss_exact_per_phase=hwm_resets, anon_samples=sampler.samples, sample_interval_s=interval_s,
        disk_read_bytes=sum(p["disk_read_bytes"] for p in phases.values()),
        logits_finite=finite, phases=phases,
    )
    result["peak_anon_added"] = result["peak_anon"] - result["anon_at_start"]
    return result


# --------------------------------------------------------------------------- all configurations (the parent)
def parse_configs(text: str) -> list[tuple[str, str, str]]:
    configs = []
    for item in text.split(","):
        parts = item.strip().split(":")
        load, dtype, step = (parts + ["lesson"])[:3] if len(parts) in (2, 3) else ("", "", "")
        if load not in LOADS or dtype not in DTYPES or step not in STEPS:
            raise ValueError(f"bad configuration {item!r}: write LOAD:DTYPE or LOAD:DTYPE:STEP with LOAD in {LOADS}, "
                             f"DTYPE in {tuple(DTYPES)} and STEP in {STEPS}, e.g. mmap:bfloat16 or mmap:float32:compiled")
        configs.append((load, dtype, step))
    return configs


CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def limited(cmd: list[str], limit_bytes: int) -> tuple[list[str], Path]:
    """CMD run in a new cgroup (v1) memory group limited to LIMIT_BYTES, which counts the page cache its process
    reads into as well as its own memory: a stand-in for a laptop with less memory. Needs root."""
    if not (CGROUP_V1 / "memory.limit_in_bytes").is_file():
        raise ValueError(f"--memory-limit-gib needs a cgroup v1 memory controller at {CGROUP_V1} (and root)")
    group = CGROUP_V1 / f"benchmark_memory_{os.getpid()}"
    group.mkdir(exist_ok=True)
    (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
    return ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *cmd], group


def run_child(model_dir: Path, load: str, dtype: str, step: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), str(model_dir), "--child", "--load", load,
           "--dtype", dtype, "--step", step, "--tokens", str(args.tokens), "--decode", str(args.decode),
           "--seed", str(args.seed), "--interval-ms", str(args.interval_ms)]
    group = None
    if args.memory_limit_gib is not None:
        cmd, group = limited(cmd, int(args.memory_limit_gib * GiB))
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr (progress) goes straight through
    finally:
        if group is not None:
            group.rmdir()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        return {"load": load, "dtype": dtype, "step": step,
                "error": f"the child process failed ({how}); see its output above"}
    result = json.loads(lines[-1])
    result["memory_limit_bytes"] = None if group is None else int(args.memory_limit_gib * GiB)
    return result


def _gib(value) -> str:
    return "-" if value is None else f"{value / GiB:.2f}"


def format_table(results: list[dict], n_tokens: int) -> str:
    header = ["configuration", "load s", f"forward s ({n_tokens} tok)", "decode s/tok", "(after 1st)", "peak RSS GiB",
              "peak RssAnon GiB", "anon + GiB", "cached at start", "disk read GiB", "others' CPU"]
    rows = []
    for r in results:
        name = f"{r['load']} {r['dtype']}" + ("" if r.get("step", "lesson") == "lesson" else f" {r['step']}")
        if "skipped" in r or "error" in r:
            rows.append([name, "skipped: " + r["skipped"] if "skipped" in r else "error: " + r["error"]])
            continue
        decode = "-" if r["decode_s_per_token"] is None else f"{r['decode_s_per_token']:.2f}"
        later = r["decode_steps_s"][1:]
        after_first = f"{sum(later) / len(later):.2f}" if later else "-"
        rows.append([name, f"{r['load_s']:.2f}", f"{r['forward_s']:.2f}", decode, after_first, _gib(r["peak_rss"]),
                     _gib(r["peak_anon"]), _gib(r["peak_anon_added"]), f"{100 * r['cached_at_start']:.0f}%",
                     _gib(r["disk_read_bytes"]), f"{r['others_cpu_cores']:.1f} cores"])
    widths = [max(len(header[i]), *(len(row[i]) for row in rows if len(row) == len(header)))
              for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) if len(row) == len(header)
                     else f"{row[0].ljust(widths[0])}  {row[1]}")
    return "\n".join(lines)


def benchmark(args: argparse.Namespace) -> int:
    model_dir: Path = args.model_dir
    paths = checkpoint_paths(model_dir)
    configs = parse_configs(args.configs)
    load_checked(model_dir)  # a bad folder (a NaN in a tensor too): one message here, not one per child
    size = sum(p.stat().st_size for p in paths)
    mem = read_meminfo()
    print(f"checkpoint {model_dir}: {size / GiB:.2f} GiB in {len(paths)} file(s); memory: {mem['MemTotal'] / GiB:.1f}"
          f" GiB total, {mem['MemAvailable'] / GiB:.1f} GiB available, {mem['Cached'] / GiB:.1f} GiB page cache; "
          f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads")
    if args.cache == "warm" and size > 0.8 * mem["MemAvailable"]:
        print(f"note: the checkpoint ({size / GiB:.1f} GiB) may not stay in the page cache next to the rest "
              f"({mem['MemAvailable'] / GiB:.1f} GiB available): 'cached at start' and 'disk read' tell")
    results = []
    for load, dtype, step in configs:
        label = f"{load} {dtype}" + ("" if step == "lesson" else f" {step}")
        for p in paths:
            if args.cache == "warm":
                seconds = warm_page_cache(p)
                print(f"[{label}] read {p.name} into the page cache in {seconds:.1f} s", file=sys.stderr)
            elif args.cache == "cold":
                drop_page_cache(p)
        print(f"[{label}] measuring in a child process ...", file=sys.stderr, flush=True)
        results.append(run_child(model_dir, load, dtype, step, args))
    print()
    print(format_table(results, args.tokens))
    print("peak RSS counts the mapped checkpoint's page cache; RssAnon is the memory the process itself holds; "
          "'anon +' is its increase over the child's start (Python + torch + the notebook's imports); "
          f"others' CPU: what other processes used of the {os.cpu_count()} CPUs meanwhile (times are only "
          "comparable when it is ~0)")
    summary = {"model_dir": str(model_dir), "checkpoint_bytes": size, "cache": args.cache, "results": results}
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))
    return 1 if any("error" in r for r in results) else 0


# --------------------------------------------------------------------------- the fake checkpoint
def make_fake(out_dir: Path, shape: str, seed: int = 0, force: bool = False, progress: bool = True) -> dict:
    """Write a random bf16 checkpoint of SHAPE in Meta's layout into OUT_DIR; returns what it measured."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {sorted(SHAPES)}")
    params = SHAPES[shape]
    out_dir = Path(out_dir)
    target = out_dir / CHECKPOINT_NAME
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    # (.partial: what a killed run of this command left; it is replaced)
    existing = sorted(p.name for p in out_dir.iterdir() if p.name != ".partial") if out_dir.is_dir() else []
    if existing and not force:
        shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise FileExistsError(f"{out_dir} already exists and holds {shown}: refusing to overwrite it "
                              f"(use --force to replace its {CHECKPOINT_NAME} and params.json)")
    shapes = expected_shapes(params)  # Meta's key names, in Meta's order
    total = sum(2 * math.prod(s) for s in shapes.values())
    # The new file is complete before an old one (with --force) is replaced: no credit for the old one.
    check_free_space(out_dir, total + GiB, f"the {shape} checkpoint ({human_size(total)}) and 1 GB to spare")
    created = make_parents(target)
    # written under a temporary folder and moved in when complete (the same file name keeps torch.save's
    # archive name, "consolidated.00/...", as for a file saved directly)
    partial_dir = out_dir / ".partial"
    partial_dir.mkdir(exist_ok=True)
    partial = partial_dir / CHECKPOINT_NAME

    start = time.perf_counter()
    with cleaned_up_on_failure([partial_dir], created):
        stats = _write_fake(partial, shapes, seed, progress)
        write_text(partial_dir / "params.json", json.dumps(params) + "\n")
        os.replace(partial_dir / "params.json", out_dir / "params.json")
        os.replace(partial, target)  # the checkpoint last
        for stale in out_dir.glob("consolidated.*.pth"):  # --force: other shards would be merged in
            if stale != target:
                stale.unlink()
    shutil.rmtree(partial_dir, ignore_errors=True)
    return {"path": str(target), "bytes": target.stat().st_size, "tensors": len(shapes),
            "parameters": total // 2, "seconds": time.perf_counter() - start, **stats}


def _write_fake(partial: Path, shapes: dict[str, tuple[int, ...]], seed: int, progress: bool) -> dict:
    total = sum(2 * math.prod(s) for s in shapes.values())
    with PeakSampler() as sampler:
        anon_at_start = sampler.take_peak()
        # 1. the zip's structure: torch.empty only reserves address space; skip_data writes no bytes (a sparse file)
        skeleton = {name: torch.empty(s, dtype=torch.bfloat16) for name, s in shapes.items()}
        with torch.serialization.skip_data():
            torch.save(skeleton, partial)
        del skeleton
        # reserve the file's blocks: a full disk is then an OSError here, not a SIGBUS in the filling below
        with open(partial, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        # 2. fill every tensor in place through a shared mapping: the pages written are the file's page cache
        with torch.serialization.set_default_mmap_options(mmap.MAP_SHARED):
            stored = torch.load(partial, mmap=True, weights_only=True)
        if list(stored) != list(shapes):
            raise RuntimeError("torch.save did not keep the tensors in order; cannot fill the file")
        gen = torch.Generator().manual_seed(seed)
        crcs: dict[str, int] = {}
        sizes: dict[str, int] = {}
        with tqdm(total=total, unit="B", unit_scale=True, desc="writing", disable=not progress,
                  file=sys.stderr) as bar:
            for key, (name, tensor) in enumerate(stored.items()):
                flat = tensor.view(tensor.shape[0], -1)
                rows = max(1, FILL_BYTES // (4 * flat.shape[1]))
                crc = 0
                for i in range(0, flat.shape[0], rows):
                    block = torch.randn(flat[i:i + rows].shape, generator=gen).mul_(FAKE_STD)
                    if name.endswith("norm.weight"):
                        block.add_(1.0)
                    flat[i:i + rows] = block
                    crc = zlib.crc32(flat[i:i + rows].view(torch.int16).numpy(), crc)
                    bar.update(2 * block.numel())
                crcs[f"{key}"], sizes[f"{key}"] = crc, 2 * tensor.numel()
        del stored, tensor, flat
        # 3. the CRC-32s skip_data left at 0, so that the zip is valid
        with zipfile.ZipFile(partial) as zf:
            prefix = zf.namelist()[0].split("/")[0]
            if any(zf.getinfo(f"{prefix}/data/{key}").file_size != n for key, n in sizes.items()):
                raise RuntimeError("torch.save's records are not in the order of the tensors; cannot patch CRCs")
        patch_zip_crcs(partial, {f"{prefix}/data/{key}": crc for key, crc in crcs.items()})
        return {"peak_anon": sampler.take_peak(), "anon_at_start": anon_at_start}


# --------------------------------------------------------------------------- command line
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time and memory of the notebook's forward pass per load mode (mmap or not) and compute "
                    "dtype, each in a fresh process; or write a random checkpoint of Llama 3's shape.",
        epilog="Example: python scripts/benchmark_memory.py --make-fake models/fake-8b --shape 8b && "
               "flock /tmp/bench.lock python scripts/benchmark_memory.py models/fake-8b")
    parser.add_argument("model_dir", type=Path, nargs="?",
                        help="a folder with consolidated.*.pth and params.json (Meta's layout)")
    parser.add_argument("--tokens", type=int, default=17, help="prompt length T of the forward pass (default 17)")
    parser.add_argument("--decode", type=int, default=3,
                        help="decode steps with the KV cache after the prompt (default 3)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help=f"comma-separated LOAD:DTYPE or LOAD:DTYPE:STEP to measure, LOAD in {LOADS}, DTYPE in "
                             f"{tuple(DTYPES)}, STEP in {STEPS} (default lesson; default {DEFAULT_CONFIGS})")
    parser.add_argument("--cache", choices=("warm", "cold", "as-is"), default="warm",
                        help="before each configuration: read the checkpoint into the page cache (warm, default), "
                             "drop it from the page cache (cold), or leave it (as-is)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prompt's token ids, or of the fake weights")
    parser.add_argument("--interval-ms", type=float, default=10.0,
                        help="how often RssAnon is sampled, in milliseconds (default 10)")
    parser.add_argument("--json-out", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--child", action="store_true",
                        help="measure one configuration (--load, --dtype) in this process and print one JSON line")
    parser.add_argument("--load", choices=LOADS, default="mmap", help="with --child: how to load (default mmap)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="bfloat16",
                        help="with --child: the compute dtype (default bfloat16)")
    parser.add_argument("--step", choices=STEPS, default="lesson",
                        help="with --child: the lesson's forward (default), section 19's decode step with the weights "
                             "as stored (step), or that step compiled (compiled)")
    parser.add_argument("--memory-limit-gib", type=float, default=None, metavar="GIB",
                        help="run each configuration in a cgroup (v1) memory group of this size, which counts the "
                             "page cache it reads into: a smaller laptop (with --cache cold, so that the file is "
                             "read inside the limit); needs root")
    parser.add_argument("--make-fake", type=Path, metavar="DIR",
                        help="write a random-weights checkpoint (consolidated.00.pth + params.json) into DIR")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="with --make-fake: 8b (16 GB) or 1gb (~1 GB)")
    parser.add_argument("--force", action="store_true",
                        help="with --make-fake: write into a DIR that is not empty, replacing its checkpoint")
    args = parser.parse_args(argv)
    if args.make_fake is not None:
        if args.shape is None:
            parser.error("--make-fake needs --shape")
        if args.model_dir is not None or args.child:
            parser.error("--make-fake writes a checkpoint; it takes no MODEL_DIR and no --child")
    elif args.model_dir is None:
        parser.error("give MODEL_DIR to benchmark, or --make-fake DIR --shape SHAPE")
    if args.memory_limit_gib is not None and not args.memory_limit_gib > 0:
        parser.error("--memory-limit-gib must be more than 0")
    if args.tokens < 1 or args.decode < 0:
        parser.error("--tokens must be >= 1 and --decode >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        if args.make_fake is not None:
            stats = make_fake(args.make_fake, args.shape, seed=args.seed, force=args.force)
            print(f"wrote {stats['path']}: {stats['bytes'] / 1e9:.2f} GB ({stats['bytes'] / GiB:.2f} GiB), "
                  f"{stats['tensors']} tensors, {stats['parameters'] / 1e9:.2f}e9 parameters in bf16, "
                  f"in {stats['seconds']:.0f} s; peak RssAnon while writing {stats['peak_anon'] / GiB:.2f} GiB "
                  f"(+{(stats['peak_anon'] - stats['anon_at_start']) / GiB:.2f} over the start)")
            return 0
        if args.child:
            print(json.dumps(measure(args.model_dir, args.load, args.dtype, args.tokens, args.decode, args.seed,
                                     args.interval_ms / 1000, step=args.step)), flush=True)
            return 0
        return benchmark(args)
    except BadCheckpoint as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if is_disk_full(exc):  # the disk filled up while writing: the temporary folder is already gone
            print(f"error: {write_failure_message(exc, args.make_fake or args.model_dir)}", file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, DiskSpaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
