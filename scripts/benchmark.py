"""Time the notebook's own generation code against Hugging Face transformers on the same weights.

Both run the demo model (SmolLM2-135M-Instruct) in float32 on the CPU, on the same prompt tokens and with the
same number of threads. The notebook side is the code of llama3-from-scratch.ipynb itself, read with
scripts/notebook_code.py; transformers loads the GGUF file the demo model was converted from.

Measured, each as the median of --repeats runs after one warm-up run, the two sides taking turns
(scratch, transformers, scratch, transformers, ...):

    decode   greedy generation of --new-tokens tokens after a short prompt, with a KV cache, never stopping
             early; tokens/s = new tokens / wall time of the whole generate call
    prefill  one forward pass over a --prompt-tokens prompt that fills the KV cache; tokens/s = prompt tokens / time
    no cache (with --no-cache) the notebook's forward re-run over the whole sequence for each new token

The last line printed is one JSON object with the numbers. A --model-dir is loaded and checked with the notebook's
own functions (torch.load(..., weights_only=True, mmap=True): a pickle that would run code is refused without
running it); a bad file or params.json ends in one `benchmark.py: error: ...` line naming it (exit status 2).

Usage:
    python scripts/benchmark.py [--repeats 5] [--new-tokens 128] [--prompt-tokens 512] [--threads N] [--no-cache]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import tiktoken
import torch
from tiktoken.load import load_tiktoken_bpe

from notebook_code import load_checked_checkpoint, load_notebook_functions

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "models" / "SmolLM2-135M-Instruct"
DEMO_GGUF = REPO_ROOT / "models" / ".cache" / "SmolLM2-135M-Instruct.Q4_1.gguf"  # written by prepare_demo_model.py

DECODE_PROMPT = "Once upon a time, there was a"  # 8 tokens
PREFILL_TEXT = (  # repeated until the prompt is long enough; its content does not matter for the timing
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined movable "
    "metal type, oil-based ink and a wooden screw press into a system that could produce books quickly and "
    "cheaply. Within fifty years presses were working in more than two hundred cities across Europe, and the "
    "number of books in circulation grew from thousands to millions. "
)


class BenchmarkError(Exception):
    """A failure with a message meant for the user (printed without a traceback)."""


# ---------------------------------------------------------------------------
# the two models


def ensure_demo_model() -> None:
    """Run scripts/prepare_demo_model.py when the demo model or its GGUF file is missing."""
    demo_files = [DEMO_DIR / name for name in ("consolidated.00.pth", "params.json", "tokenizer.model",
                                               "tokenizer_config.json")]
    needed = demo_files + [DEMO_GGUF]
    if all(path.is_file() for path in needed):
        return
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "prepare_demo_model.py")]
    if all(path.is_file() for path in demo_files):
        cmd.append("--force")  # only the GGUF file is gone: a plain run would say "already prepared"
    print(f"The demo model or its GGUF file is missing: running {' '.join(cmd[1:])}", flush=True)
    result = subprocess.run(cmd, cwd=REPO_ROOT)
    missing = [str(path.relative_to(REPO_ROOT)) for path in needed if not path.is_file()]
    if result.returncode != 0 or missing:
        raise BenchmarkError(f"the demo model could not be prepared (scripts/prepare_demo_model.py exited with "
                             f"{result.returncode}; missing: {', '.join(missing) or 'nothing'}); see its message above")


def load_scratch_model(nb: dict, model_dir: Path):
    """The notebook's Model, loaded and checked exactly as the notebook does it.

    The notebook's loader is torch.load(..., weights_only=True, mmap=True): a pickle that would run code is
    refused without running it; its InputError (a damaged file, an HTML page, a params.json that does not fit
    the weights) becomes a BenchmarkError with the same message.
    """
    missing = [] if (model_dir / "params.json").is_file() else ["params.json"]
    if not sorted(model_dir.glob("consolidated.*.pth")):
        missing.append("consolidated.00.pth")
    if missing:
        raise BenchmarkError(f"{' and '.join(str(model_dir / name) for name in missing)} missing: --model-dir must "
                             "hold Meta's params.json and consolidated.00.pth")
    try:
        cfg, checkpoint = load_checked_checkpoint(nb, model_dir)
    except nb["InputError"] as error:
        raise BenchmarkError(str(error)) from None
    return nb["Model"](checkpoint, cfg, torch.device("cpu"), torch.float32)


def load_hf_model(hf_model: Path):
    """transformers' LlamaForCausalLM in float32, from the demo's GGUF file or from a Hugging Face folder."""
    try:
        import transformers
        from transformers import AutoModelForCausalLM
    except ImportError as error:
        raise BenchmarkError(f"the benchmark needs transformers (pip install -r requirements-dev.txt): {error}")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    with contextlib.redirect_stderr(io.StringIO()):  # hide the progress bar of the GGUF dequantization
        if hf_model.suffix == ".gguf":
            model = AutoModelForCausalLM.from_pretrained(hf_model.parent, gguf_file=hf_model.name,
                                                         dtype=torch.float32)
        else:
            model = AutoModelForCausalLM.from_pretrained(hf_model, dtype=torch.float32)
    return model.eval()


def load_tokenizer(nb: dict, model_dir: Path) -> tiktoken.Encoding:
    """The model's own tokenizer, as the notebook loads it (only used to make the prompts)."""
    config_path = model_dir / "tokenizer_config.json"
    if config_path.is_file():  # the demo model: its tokenizer with its split regex and special tokens
        config = json.loads(config_path.read_text())
        return tiktoken.Encoding(name=model_dir.name, pat_str=config["pat_str"], special_tokens=config["special_tokens"],
                                 mergeable_ranks=load_tiktoken_bpe(str(model_dir / "tokenizer.model")))
    if (model_dir / "tokenizer.model").is_file():  # Meta's Llama 3 folder
        return nb["load_llama3_tokenizer"](model_dir / "tokenizer.model")
    raise BenchmarkError(f"{model_dir} has no tokenizer.model to make the prompts with")


def prompt_of_length(tokenizer: tiktoken.Encoding, n: int) -> list[int]:
    """Exactly n tokens of ordinary text."""
    tokens = tokenizer.encode(PREFILL_TEXT)
    return (tokens * (n // len(tokens) + 1))[:n]


# ---------------------------------------------------------------------------
# the measurements


def hf_generate(model, tokens: list[int], new_tokens: int) -> list[int]:
    """Greedy, never stopping early: no eos, so exactly new_tokens tokens, like the notebook's stop_tokens=()."""
    ids = torch.tensor([tokens])
    # The attention mask is given: without an eos, transformers would otherwise mask prompt tokens equal to its pad id.
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, do_sample=False, eos_token_id=None)
    generated = out[0, len(tokens):].tolist()
    if len(generated) != new_tokens:
        raise BenchmarkError(f"transformers stopped after {len(generated)} of {new_tokens} new tokens")
    return generated


def hf_prefill(model, tokens: list[int]) -> None:
    """One forward pass that fills a KV cache. Like the notebook's forward (and like generate's own prefill),
    only the last position's logits are computed: logits_to_keep=1."""
    with torch.inference_mode():
        model(torch.tensor([tokens]), use_cache=True, logits_to_keep=1)


def scratch_no_cache(nb: dict, model, tokens: list[int], new_tokens: int) -> list[int]:
    """Greedy generation as before the KV cache: the whole sequence through the model again for each new token."""
    tokens = list(tokens)
    for _ in range(new_tokens):
        tokens.append(int(nb["forward"](model, tokens).argmax()))
    return tokens[-new_tokens:]


def interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, object], dict[str, float]]:
    """One warm-up run of each, then `repeats` rounds that run each once, in turn.

    Returns the warm-up runs' results and the median wall time of each."""
    results = {name: run() for name, run in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return results, {name: statistics.median(t) for name, t in times.items()}


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


# ---------------------------------------------------------------------------
# the report


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def busy_fraction(seconds: float = 1.0) -> float | None:
    """How much of the machine's CPU time other processes used during `seconds` (Linux only)."""
    def idle_and_total() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, all
    try:
        idle0, total0 = idle_and_total()
        time.sleep(seconds)
        idle1, total1 = idle_and_total()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_table(rows: list[tuple[str, float, float | None]]) -> None:
    width = max(len(label) for label, _, _ in rows)
    print(f"{'':{width}}  {'scratch':>9}  {'transformers':>12}  {'ratio':>6}")
    for label, ours, theirs in rows:
        their_text = f"{theirs:12.1f}" if theirs is not None else f"{'-':>12}"
        ratio_text = f"{ours / theirs:5.2f}x" if theirs is not None else f"{'-':>6}"
        print(f"{label:{width}}  {ours:9.1f}  {their_text}  {ratio_text}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each measurement, after one warm-up (default: 5)")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens generated in the decode measurement (default: 128)")
    parser.add_argument("--prompt-tokens", type=int, default=512, help="prompt length in the prefill measurement (default: 512)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads, for both sides (default: torch's default on this machine)")
    parser.add_argument("--no-cache", action="store_true",
                        help="also time the notebook's generation without a KV cache")
    parser.add_argument("--no-cache-tokens", type=int, default=16, help="tokens generated without a KV cache (default: 16)")
    parser.add_argument("--model-dir", type=Path, default=DEMO_DIR,
                        help="a folder of Meta's files for the notebook's code (default: the demo model, prepared "
                             "when missing)")
    parser.add_argument("--hf-model", type=Path, default=None,
                        help="the same weights for transformers: a .gguf file or a Hugging Face folder (default: "
                             "the demo model's GGUF file; required with another --model-dir)")
    args = parser.parse_args(argv)
    for name in ("repeats", "new_tokens", "prompt_tokens", "threads", "no_cache_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchmarkError as error:
        print(f"benchmark.py: error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    if args.model_dir.resolve() == DEMO_DIR:
        ensure_demo_model()
    elif args.hf_model is None:
        raise BenchmarkError("with another --model-dir, pass --hf-model: the same weights for transformers")
    hf_path = args.hf_model or DEMO_GGUF
    if not hf_path.exists():
        raise BenchmarkError(f"--hf-model {hf_path}: no such file or folder")

    nb = load_notebook_functions()
    scratch = load_scratch_model(nb, args.model_dir)  # a bad folder is refused before anything is timed
    busy = busy_fraction()  # other processes' share of the CPU, measured while this one sleeps
    hf = load_hf_model(hf_path)
    tokenizer = load_tokenizer(nb, args.model_dir)
    decode_prompt = tokenizer.encode(DECODE_PROMPT)
    prefill_prompt = prompt_of_length(tokenizer, args.prompt_tokens)
    n_new = args.new_tokens

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__} with {torch.get_num_threads()} "
          f"threads; transformers {sys.modules['transformers'].__version__}; float32")
    print(f"scratch: the notebook's code on {shown(args.model_dir)}; transformers: {shown(hf_path)}")
    if busy is not None and busy > 0.1:  # other processes compete for the cores: both sides slow down, unevenly
        print(f"warning: other processes used {busy:.0%} of the CPU time just before the start: the timings are "
              "noisy; run it on an idle machine")
    print(f"each number: the median of {args.repeats} runs after one warm-up, scratch and transformers taking turns\n",
          flush=True)

    decoded, decode_s = interleaved({
        "scratch": lambda: nb["generate"](scratch, decode_prompt, n_new, stop_tokens=()),
        "hf": lambda: hf_generate(hf, decode_prompt, n_new),
    }, args.repeats)
    _, prefill_s = interleaved({
        "scratch": lambda: nb["forward"](scratch, prefill_prompt, 0, nb["new_kv_cache"](scratch, len(prefill_prompt))),
        "hf": lambda: hf_prefill(hf, prefill_prompt),
    }, args.repeats)
    if args.no_cache:
        _, no_cache_s = interleaved({
            "scratch": lambda: scratch_no_cache(nb, scratch, decode_prompt, args.no_cache_tokens),
        }, args.repeats)

    numbers = {
        "scratch_tokens_per_s": n_new / decode_s["scratch"],
        "hf_tokens_per_s": n_new / decode_s["hf"],
        "scratch_prefill_tokens_per_s": len(prefill_prompt) / prefill_s["scratch"],
        "hf_prefill_tokens_per_s": len(prefill_prompt) / prefill_s["hf"],
    }
    numbers["decode_ratio"] = numbers["scratch_tokens_per_s"] / numbers["hf_tokens_per_s"]
    numbers["prefill_ratio"] = numbers["scratch_prefill_tokens_per_s"] / numbers["hf_prefill_tokens_per_s"]
    rows = [(f"decode tok/s ({n_new} new tokens, {len(decode_prompt)}-token prompt)",
             numbers["scratch_tokens_per_s"], numbers["hf_tokens_per_s"]),
            (f"prefill tok/s ({len(prefill_prompt)}-token prompt)",
             numbers["scratch_prefill_tokens_per_s"], numbers["hf_prefill_tokens_per_s"])]
    if args.no_cache:
        numbers["scratch_no_cache_tokens_per_s"] = args.no_cache_tokens / no_cache_s["scratch"]
        rows.append((f"decode tok/s without KV cache ({args.no_cache_tokens} new tokens)",
                     numbers["scratch_no_cache_tokens_per_s"], None))
    print_table(rows)
    print("ratio = scratch / transformers, above 1: the notebook is faster. Decode times the whole generate call; "
          f"the prefill of its {len(decode_prompt)}-token prompt is included and negligible.")
    if args.no_cache:
        print(f"the KV cache makes the notebook's decode "
              f"{numbers['scratch_tokens_per_s'] / numbers['scratch_no_cache_tokens_per_s']:.1f}x faster "
              f"(without it, each new token runs the whole sequence again)")

    ours, theirs = decoded["scratch"], decoded["hf"]
    same = ours == theirs
    if same:
        print(f"same tokens: yes, both generated the same {n_new} greedy tokens")
    else:
        i = first_difference(ours, theirs)
        print(f"same tokens: NO, they diverge at new token {i}: scratch "
              f"{ours[i:i + 5]!r} ({tokenizer.decode(ours[i:i + 5])!r}), transformers {theirs[i:i + 5]!r} "
              f"({tokenizer.decode(theirs[i:i + 5])!r})")
    print(f"text: {DECODE_PROMPT + tokenizer.decode(ours)!r}")
    print(json.dumps({**{k: float(f"{v:.4g}") for k, v in numbers.items()}, "same_tokens": same,
                      "threads": torch.get_num_threads(), "repeats": args.repeats, "new_tokens": n_new,
                      "prompt_tokens": len(prefill_prompt), "decode_prompt_tokens": len(decode_prompt)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
