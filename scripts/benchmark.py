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
    batch    (with --batch 1,4,16) for each batch size B, B prompts of different lengths (the decode prompt and
             other short sentences, 5 to 14 tokens, repeated when B is larger than their number) generated at once,
             greedily, --new-tokens tokens per row, never stopping early; tokens/s = B * new tokens / wall time of
             the whole call (the batch's prefill included). transformers: its batched generate with the prompts
             LEFT-padded (attention_mask, pad_token_id; hf_generate_batch). The notebook:
             nb["generate_batch"](model, prompts, new_tokens, stop_tokens=()) (plus max_batch_size=B when it takes
             that argument), skipped with a message while the notebook has no generate_batch. --plot PATH also
             draws tokens/s against B for both (a PNG).

With --llama-cpp DIR (the bin folder of a llama.cpp build that holds llama-bench and llama-quantize; never a
dependency, the README says how to build one), llama.cpp is timed too, in the same rounds, taking its turn after
the others: the --hf-model GGUF file requantized once by llama-quantize --allow-requantize into F32, BF16 and Q8_0
(kept in --llama-cpp-ggufs; for the demo model the F32 file holds exactly the weights the notebook runs), each run
as `llama-bench -r 1` per round for --new-tokens tokens after no prompt, and for a --prompt-tokens prefill; its
tokens/s are the ones llama-bench reports, the median over the rounds. Each type is set beside the notebook's step
with as many bytes per weight (F32: the compiled float32 step, BF16: bf16 weights, Q8_0: int8 weights, though
Q8_0 keeps one scale per 32 weights where the notebook keeps one per row).

The last line printed is one JSON object with the numbers (with --batch, also a "batch" key: one entry per B).
A --model-dir is loaded and checked with the notebook's own functions (torch.load(..., weights_only=True,
mmap=True): a pickle that would run code is refused without running it); a bad file or params.json ends in one
`benchmark.py: error: ...` line naming it (exit status 2).

The notebook side runs the fast path of the notebook's section 19 (notebook_code.use_fast_path: stacked wqkv/w13,
fused attention, the blocked float32 row product, swapped in by name); --plain times the lesson's own functions,
--compile adds torch.compile of transformer_layer to it.

Unless --plain, decode is also timed on section 19's later steps (notebook_code.use_decode_step): decode_layer with
a fixed-size cache, compiled with torch.compile (decode_layer and final_logits), with float32, bf16 (float32
activations) and int8 weights (quantize_packed: one scale per output row, four weights to a word, speed-up 7); each
compiles in its warm-up run, which is not timed, and each is checked for the same greedy tokens as transformers. The
int8 weights' quality against float32 is measured as the notebook does (passage_logits on QUALITY_TEXT,
teacher-forced): top-1 agreement, mean KL divergence and both perplexities. The JSON line then also has compiled_,
bf16_ and int8_tokens_per_s, their *_ratio to transformers and *_same_tokens, int8_top1, int8_kl, float32_perplexity
and int8_perplexity. With --llama-cpp: llama_cpp_f32_tokens_per_s, llama_cpp_f32_prefill_tokens_per_s and
llama_cpp_f32_ratio (to transformers), the same for bf16 and q8_0, and compiled_, bf16_ and int8_to_llama_cpp (the
notebook's step over llama.cpp's of the same bytes per weight).

Usage:
    python scripts/benchmark.py [--repeats 5] [--new-tokens 128] [--prompt-tokens 512] [--threads N] [--no-cache]
                                [--plain] [--compile]
                                [--batch 1,4,16 [--plot batch.png]] [--llama-cpp path/to/llama.cpp/build/bin]

From Python (tests): hf_generate_batch(hf_model, prompts, max_new_tokens, pad_id, stop_tokens) is transformers'
batched greedy generate, each row cut after its first stop token.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import inspect
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

from llama3_files import CPP_COMPILERS, InputError, cpp_compiler, load_llama3_tokenizer
from notebook_code import load_checked_checkpoint, load_notebook_functions, use_decode_step, use_fast_path
from safe_write import cleaned_up_on_failure

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "models" / "SmolLM2-135M-Instruct"
DEMO_GGUF = REPO_ROOT / "models" / ".cache" / "SmolLM2-135M-Instruct.Q4_1.gguf"  # written by prepare_demo_model.py

DECODE_PROMPT = "Once upon a time, there was a"  # 8 tokens
BATCH_PROMPTS = (  # --batch: row i gets BATCH_PROMPTS[i % 8]; 8, 5, 6, 14, 8, 11, 6 and 10 tokens on the demo model
    DECODE_PROMPT,
    "The capital of France is",
    "Water boils at a temperature of",
    "Once upon a time, in a small village by the sea, there",
    "The best way to learn a language is",
    "Here is a short recipe for a simple tomato soup:",
    "My favourite book is about a",
    "Once upon a time, there was a dragon who",
)
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


def load_scratch_model(nb: dict, model_dir: Path, plain: bool = False, compiled: bool = False):
    """The notebook's Model, loaded and checked exactly as the notebook does it, on section 19's fast path.

    The fast path (notebook_code.use_fast_path) swaps the notebook's speed-ups into NB by name, as section 19
    does: stacked wqkv/w13, fused attention, the blocked float32 row product. PLAIN keeps the lesson's own
    functions; COMPILED also puts torch.compile(transformer_layer, dynamic=True) in transformer_layer's place.

    The notebook's loader (llama3_files, through notebook_code.load_checked_checkpoint) is torch.load(...,
    weights_only=True, mmap=True): a pickle that would run code is refused without running it; its InputError
    (a damaged file, an HTML page, a params.json that does not fit the weights, a NaN or an infinity in a tensor)
    becomes a BenchmarkError with the same message.
    """
    missing = [] if (model_dir / "params.json").is_file() else ["params.json"]
    if not sorted(model_dir.glob("consolidated.*.pth")):
        missing.append("consolidated.00.pth")
    if missing:
        raise BenchmarkError(f"{' and '.join(str(model_dir / name) for name in missing)} missing: --model-dir must "
                             "hold Meta's params.json and consolidated.00.pth")
    try:
        cfg, checkpoint = load_checked_checkpoint(model_dir)
    except InputError as error:
        raise BenchmarkError(str(error)) from None
    model = nb["Model"](checkpoint, cfg, torch.device("cpu"), torch.float32)
    if not plain:
        model = use_fast_path(nb, model)
    if compiled:
        nb["swap_in"]({"transformer_layer": torch.compile(nb["transformer_layer"], dynamic=True)})
    return model


VARIANTS = {"compiled": "float32", "bf16": "bfloat16", "int8": "int8"}  # JSON prefix -> the weights' dtype


def load_variants(model_dir: Path) -> dict[str, tuple[dict, object]]:
    """Section 19's decode step, compiled, with float32, bf16 and int8 weights: {prefix: (namespace, model)}.

    Each gets a namespace of its own (notebook_code.use_decode_step swaps functions by name); the checkpoint is
    the one load_scratch_model already checked. torch.compile compiles at the first decode step, in the warm-up.
    """
    cfg, checkpoint = load_checked_checkpoint(model_dir, values=False)
    variants = {}
    for prefix, weights in VARIANTS.items():
        nb = load_notebook_functions()
        model = nb["Model"](checkpoint, cfg, torch.device("cpu"), torch.float32)
        try:
            variants[prefix] = (nb, use_decode_step(nb, model, weights, compiled=True))
        except ValueError as error:  # a model too big for the stacked copies
            print(f"note: {prefix} not measured: {error}")
    return variants


def int8_quality(variants: dict[str, tuple[dict, object]], tokenizer: tiktoken.Encoding) -> dict[str, float]:
    """The notebook's quality measure of int8 weights against float32, on its passage read teacher-forced:
    top-1 agreement, mean KL(p32 || p8) and both perplexities (nb["passage_logits"], not compiled)."""
    (nb32, m32), (nb8, m8) = variants["compiled"], variants["int8"]
    tokens = tokenizer.encode(nb32["QUALITY_TEXT"])
    ref, q8 = nb32["passage_logits"](m32, tokens), nb8["passage_logits"](m8, tokens)
    kl = torch.nn.functional.kl_div(q8.log_softmax(-1), ref.log_softmax(-1), log_target=True, reduction="none")
    targets = torch.tensor(tokens[1:])
    return {"int8_top1": float((q8.argmax(-1) == ref.argmax(-1)).float().mean()),
            "int8_kl": float(kl.sum(-1).mean()),
            "float32_perplexity": float(torch.nn.functional.cross_entropy(ref[:-1], targets).exp()),
            "int8_perplexity": float(torch.nn.functional.cross_entropy(q8[:-1], targets).exp())}


LLAMA_CPP_TYPES = {"F32": "compiled", "BF16": "bf16", "Q8_0": "int8"}  # llama.cpp's type -> the step it is set beside
LLAMA_CPP_GGUFS = REPO_ROOT / "models" / ".cache" / "llama.cpp"


def last_error_line(result: subprocess.CompletedProcess) -> str:  # what a failed tool said last, for our message
    return (result.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]


def llama_cpp_tool(bin_dir: Path, name: str) -> Path:
    exe = bin_dir / name
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        raise BenchmarkError(f"--llama-cpp {bin_dir}: no executable {name} there; give the bin folder of a llama.cpp "
                             "build with llama-bench and llama-quantize (the README says how to build one)")
    return exe


def llama_cpp_ggufs(bin_dir: Path, source: Path, folder: Path) -> dict[str, Path]:
    """SOURCE (a GGUF file) in each of LLAMA_CPP_TYPES, written into FOLDER by llama-quantize the first time."""
    if source.suffix != ".gguf":
        raise BenchmarkError(f"--llama-cpp needs the weights as a GGUF file for llama.cpp; --hf-model is {source}")
    quantize = llama_cpp_tool(bin_dir, "llama-quantize")
    files = {kind: folder / f"{source.stem}.{kind}.gguf" for kind in LLAMA_CPP_TYPES}
    created = [] if folder.is_dir() else [folder]
    folder.mkdir(parents=True, exist_ok=True)
    for kind, path in files.items():
        if path.exists():
            continue
        partial = path.with_name(path.name + ".partial")
        print(f"llama-quantize: {shown(source)} -> {kind}", flush=True)
        with cleaned_up_on_failure([partial], created):
            result = subprocess.run([str(quantize), "--allow-requantize", str(source), str(partial), kind],
                                    capture_output=True, text=True)
            if result.returncode != 0 or not partial.is_file():
                raise BenchmarkError(f"{quantize} could not write {kind} from {source} (exit status "
                                     f"{result.returncode}): {last_error_line(result)}")
            partial.rename(path)
    return files


class LlamaBench:
    """llama.cpp's llama-bench on one GGUF file: each call runs it once (-r 1) and keeps the tokens/s it reports."""

    def __init__(self, exe: Path, gguf: Path, threads: int, prompt_tokens: int, new_tokens: int):
        self.command = [str(exe), "-m", str(gguf), "-t", str(threads), "-p", str(prompt_tokens), "-n", str(new_tokens),
                        "-r", "1", "-o", "csv"]
        self.rates: list[float] = []

    def __call__(self) -> float:
        result = subprocess.run(self.command, capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchmarkError(f"{' '.join(self.command)} failed (exit status {result.returncode}): "
                                 f"{last_error_line(result)}")
        try:
            rate = float(list(csv.DictReader(io.StringIO(result.stdout)))[-1]["avg_ts"])
        except (IndexError, KeyError, ValueError):
            raise BenchmarkError(f"{self.command[0]} printed no CSV row with an avg_ts column: "
                                 f"{result.stdout[:200]!r}") from None
        self.rates.append(rate)
        return rate

    def median(self) -> float:  # interleaved() calls it once more than --repeats: the first call is its warm-up
        return statistics.median(self.rates[1:] or self.rates)


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
        return load_llama3_tokenizer(model_dir / "tokenizer.model")
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


def hf_generate_batch(hf_model, prompts: list[list[int]], max_new_tokens: int, pad_id: int,
                      stop_tokens=()) -> list[list[int]]:
    """transformers' batched greedy generate(do_sample=False) on PROMPTS at once, LEFT-padded.

    Each prompt is right-aligned in one (len(prompts), longest) tensor filled with pad_id, with an attention_mask
    that is 0 on the padding (transformers then also starts each row's positions at its first real token), and
    pad_token_id=pad_id. Returns one list per prompt, in order, no padding: its new tokens up to and including
    its first stop token (transformers fills a finished row with pad_id until every row is done), at most
    max_new_tokens. With no stop_tokens, eos_token_id=None: every row gets exactly max_new_tokens tokens, and an
    eos the model generates is an ordinary token, as in the notebook's generate(stop_tokens=()).
    """
    prompts = [[int(t) for t in prompt] for prompt in prompts]
    if not prompts or any(not prompt for prompt in prompts):
        raise ValueError("hf_generate_batch needs at least one prompt, and no empty prompt")
    width = max(len(prompt) for prompt in prompts)
    ids = torch.full((len(prompts), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt):] = torch.tensor(prompt)
        mask[i, width - len(prompt):] = 1
    stop = [int(t) for t in stop_tokens]
    with torch.inference_mode():
        out = hf_model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=int(pad_id), eos_token_id=stop or None)
    rows = []
    for row in out[:, width:].tolist():
        end = next((i + 1 for i, token in enumerate(row) if token in stop), len(row))
        rows.append(row[:min(end, max_new_tokens)])
    return rows


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


def batch_prompts(tokenizer: tiktoken.Encoding, batch_size: int) -> list[list[int]]:
    """batch_size prompts of different lengths: BATCH_PROMPTS in turn, from the decode prompt on."""
    return [tokenizer.encode(BATCH_PROMPTS[i % len(BATCH_PROMPTS)]) for i in range(batch_size)]


def checked_rows(rows, batch_size: int, new_tokens: int, who: str) -> list[list[int]]:
    """ROWS as batch_size lists of new_tokens ints, or a BenchmarkError saying what WHO returned instead."""
    ok = (isinstance(rows, (list, tuple)) and len(rows) == batch_size
          and all(isinstance(row, (list, tuple)) and len(row) == new_tokens for row in rows))
    if not ok:
        shape = [len(row) if isinstance(row, (list, tuple)) else type(row).__name__ for row in rows] \
            if isinstance(rows, (list, tuple)) else type(rows).__name__
        raise BenchmarkError(f"{who} returned {shape} for {batch_size} prompts; expected {batch_size} lists of "
                             f"{new_tokens} new tokens (greedy, stop_tokens=(): no row stops early)")
    return [[int(t) for t in row] for row in rows]


def call_generate_batch(generate_batch, model, prompts: list[list[int]], new_tokens: int):
    """nb["generate_batch"](model, prompts, new_tokens, stop_tokens=()), with max_batch_size=len(prompts) when it
    takes that argument (its default may be smaller than the batch sizes asked for)."""
    try:
        takes_max_batch_size = "max_batch_size" in inspect.signature(generate_batch).parameters
    except (TypeError, ValueError):
        takes_max_batch_size = False
    kwargs = {"max_batch_size": len(prompts)} if takes_max_batch_size else {}
    return generate_batch(model, prompts, new_tokens, stop_tokens=(), **kwargs)


def batch_benchmark(nb: dict, scratch, hf, tokenizer: tiktoken.Encoding, sizes: list[int], new_tokens: int,
                    repeats: int) -> list[dict]:
    """For each batch size: tokens/s of the notebook's generate_batch (when it exists) and of transformers'
    batched generate, taking turns like the other measurements, and whether their greedy rows are the same."""
    generate_batch = nb.get("generate_batch")
    pad_id = hf.generation_config.pad_token_id
    pad_id = 0 if pad_id is None else int(pad_id if isinstance(pad_id, int) else pad_id[0])  # masked: any id will do
    entries = []
    for size in sizes:
        prompts = batch_prompts(tokenizer, size)
        runs = {}
        if generate_batch is not None:
            runs["scratch"] = lambda: call_generate_batch(generate_batch, scratch, prompts, new_tokens)
        runs["hf"] = lambda: hf_generate_batch(hf, prompts, new_tokens, pad_id)
        try:
            rows, seconds = interleaved(runs, repeats)
        except InputError as error:  # the notebook refused the batch (too large for its KV cache?)
            raise BenchmarkError(f"--batch {size}: the notebook's generate_batch refused it: {error}") from None
        theirs = checked_rows(rows["hf"], size, new_tokens, "transformers' generate")
        entry = {"batch_size": size, "prompt_tokens": [len(p) for p in prompts],
                 "scratch_tokens_per_s": None, "hf_tokens_per_s": size * new_tokens / seconds["hf"],
                 "ratio": None, "same_tokens": None, "first_difference": None}
        if generate_batch is not None:
            ours = checked_rows(rows["scratch"], size, new_tokens, "the notebook's generate_batch")
            entry["scratch_tokens_per_s"] = size * new_tokens / seconds["scratch"]
            entry["ratio"] = entry["scratch_tokens_per_s"] / entry["hf_tokens_per_s"]
            entry["same_tokens"] = ours == theirs
            if ours != theirs:
                row = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
                entry["first_difference"] = {"row": row, "token": first_difference(ours[row], theirs[row])}
        entries.append(entry)
    return entries


def print_batch_table(entries: list[dict], new_tokens: int) -> None:
    print(f"\nbatched greedy generation, {new_tokens} new tokens per row, tokens/s = B * {new_tokens} / wall time")
    print(f"{'B':>4}  {'prompt tokens':>13}  {'scratch':>9}  {'transformers':>12}  {'ratio':>6}  same tokens")
    for e in entries:
        lengths = f"{min(e['prompt_tokens'])}-{max(e['prompt_tokens'])}"
        ours = f"{e['scratch_tokens_per_s']:9.1f}" if e["scratch_tokens_per_s"] is not None else f"{'-':>9}"
        ratio = f"{e['ratio']:5.2f}x" if e["ratio"] is not None else f"{'-':>6}"
        if e["same_tokens"] is None:
            same = "-"
        elif e["same_tokens"]:
            same = "yes"
        else:
            same = f"NO (row {e['first_difference']['row']}, new token {e['first_difference']['token']})"
        print(f"{e['batch_size']:4d}  {lengths:>13}  {ours}  {e['hf_tokens_per_s']:12.1f}  {ratio}  {same}")


def write_batch_plot(entries: list[dict], path: Path, title: str) -> None:
    """tokens/s against batch size, one line per side that was timed, as a PNG written under a temporary name
    and renamed into place when complete."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [e["batch_size"] for e in entries]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    if all(e["scratch_tokens_per_s"] is not None for e in entries):
        ax.plot(sizes, [e["scratch_tokens_per_s"] for e in entries], "o-", label="this notebook (generate_batch)")
    else:
        title += "\n(the notebook has no generate_batch yet: transformers only)"
    ax.plot(sizes, [e["hf_tokens_per_s"] for e in entries], "s-", label="transformers (batched generate)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("batch size (prompts generated at once)")
    ax.set_ylabel("tokens/s (all rows)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = path.resolve()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    with cleaned_up_on_failure([tmp], created=[]):
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    plt.close(fig)


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


def batch_sizes(text: str) -> list[int]:
    """--batch's comma list ("1,4,16") as sorted distinct sizes; anything else is an argparse error."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"must be a comma list of batch sizes of at least 1, like 1,4,16; "
                                         f"got {text!r}")
    return sorted(set(sizes))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmark.py", description=__doc__.split("\n\n")[0])
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
    parser.add_argument("--plain", action="store_true",
                        help="time the lesson's plain functions instead of the fast path of the notebook's section 19")
    parser.add_argument("--compile", action="store_true",
                        help="also run the notebook's transformer_layer through torch.compile (dynamic shapes); "
                             "the compilation happens in the warm-up run, which is not timed")
    parser.add_argument("--batch", type=batch_sizes, default=None, metavar="B1,B2,...",
                        help="also time batched greedy generation of --new-tokens tokens per row for these batch "
                             "sizes, e.g. 1,4,16 (default: not run)")
    parser.add_argument("--plot", type=Path, default=None, metavar="PATH",
                        help="with --batch: write a PNG of tokens/s against batch size to PATH (a .png file)")
    parser.add_argument("--llama-cpp", type=Path, default=None, metavar="DIR",
                        help="also time llama.cpp on the same weights: the bin folder of a llama.cpp build holding "
                             "llama-bench and llama-quantize (default: not run; never needed)")
    parser.add_argument("--llama-cpp-ggufs", type=Path, default=LLAMA_CPP_GGUFS, metavar="DIR",
                        help="with --llama-cpp: where the F32, BF16 and Q8_0 GGUF files are written the first time "
                             "(default: models/.cache/llama.cpp)")
    args = parser.parse_args(argv)
    for name in ("repeats", "new_tokens", "prompt_tokens", "threads", "no_cache_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.plot is not None:  # refused before anything is loaded or timed
        if args.batch is None:
            parser.error("--plot needs --batch: it draws the batch measurement")
        if args.plot.suffix.lower() != ".png":
            parser.error(f"--plot {args.plot}: the file name must end in .png")
        if args.plot.is_dir():
            parser.error(f"--plot {args.plot} is a folder: give the name of a .png file")
        if not args.plot.resolve().parent.is_dir():
            parser.error(f"--plot {args.plot}: the folder {args.plot.resolve().parent} does not exist")
    if args.llama_cpp is not None and not args.llama_cpp.is_dir():
        parser.error(f"--llama-cpp {args.llama_cpp}: no such folder (give the bin folder of a llama.cpp build)")
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

    if not args.plain and cpp_compiler() is None:  # section 19's decode step is always compiled
        raise BenchmarkError("torch.compile needs a C++ compiler on the CPU and none was found (the CXX variable, or "
                             f"one of {', '.join(CPP_COMPILERS)} on the PATH): install one, or pass --plain")
    llama_ggufs = {} if args.llama_cpp is None else llama_cpp_ggufs(args.llama_cpp, hf_path, args.llama_cpp_ggufs)
    llama_bench = None if args.llama_cpp is None else llama_cpp_tool(args.llama_cpp, "llama-bench")
    nb = load_notebook_functions()
    scratch = load_scratch_model(nb, args.model_dir, args.plain, args.compile)  # a bad folder: refused before timing
    busy = busy_fraction()  # other processes' share of the CPU, measured while this one sleeps
    hf = load_hf_model(hf_path)
    tokenizer = load_tokenizer(nb, args.model_dir)
    decode_prompt = tokenizer.encode(DECODE_PROMPT)
    prefill_prompt = prompt_of_length(tokenizer, args.prompt_tokens)
    n_new = args.new_tokens

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__} with {torch.get_num_threads()} "
          f"threads; transformers {sys.modules['transformers'].__version__}; float32")
    path = "the lesson's plain functions" if args.plain else "the fast path of section 19"
    print(f"scratch: the notebook's code ({path}{', torch.compile' if args.compile else ''}) on "
          f"{shown(args.model_dir)}; transformers: {shown(hf_path)}")
    if busy is not None and busy > 0.1:  # other processes compete for the cores: both sides slow down, unevenly
        print(f"warning: other processes used {busy:.0%} of the CPU time just before the start: the timings are "
              "noisy; run it on an idle machine")
    print(f"each number: the median of {args.repeats} runs after one warm-up, scratch and transformers taking turns\n",
          flush=True)

    variants = {} if args.plain else load_variants(args.model_dir)
    decode_runs = {
        "scratch": lambda: nb["generate"](scratch, decode_prompt, n_new, stop_tokens=()),
        "hf": lambda: hf_generate(hf, decode_prompt, n_new),
    }
    for prefix, (vnb, vmodel) in variants.items():
        decode_runs[prefix] = lambda vnb=vnb, vmodel=vmodel: vnb["generate"](vmodel, decode_prompt, n_new, stop_tokens=())
    llama_decode = {kind: LlamaBench(llama_bench, path, args.threads, 0, n_new) for kind, path in llama_ggufs.items()}
    llama_prefill = {kind: LlamaBench(llama_bench, path, args.threads, len(prefill_prompt), 0)
                     for kind, path in llama_ggufs.items()}
    decode_runs |= {f"llama.cpp {kind}": bench for kind, bench in llama_decode.items()}  # last in each round
    if variants:
        print(f"the warm-up run compiles the decode step of {', '.join(variants)}: a minute or more", flush=True)
    decoded, decode_s = interleaved(decode_runs, args.repeats)
    _, prefill_s = interleaved({
        "scratch": lambda: nb["forward"](scratch, prefill_prompt, 0, nb["new_kv_cache"](scratch, len(prefill_prompt))),
        "hf": lambda: hf_prefill(hf, prefill_prompt),
    } | {f"llama.cpp {kind}": bench for kind, bench in llama_prefill.items()}, args.repeats)
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
    for prefix in variants:
        numbers[f"{prefix}_tokens_per_s"] = n_new / decode_s[prefix]
        numbers[f"{prefix}_ratio"] = numbers[f"{prefix}_tokens_per_s"] / numbers["hf_tokens_per_s"]
    for kind in llama_ggufs:  # llama-bench's own tokens/s, the median over the rounds
        key = f"llama_cpp_{kind.lower()}"
        numbers[f"{key}_tokens_per_s"] = llama_decode[kind].median()
        numbers[f"{key}_prefill_tokens_per_s"] = llama_prefill[kind].median()
        numbers[f"{key}_ratio"] = numbers[f"{key}_tokens_per_s"] / numbers["hf_tokens_per_s"]
        if LLAMA_CPP_TYPES[kind] in variants:
            numbers[f"{LLAMA_CPP_TYPES[kind]}_to_llama_cpp"] = (numbers[f"{LLAMA_CPP_TYPES[kind]}_tokens_per_s"]
                                                                / numbers[f"{key}_tokens_per_s"])
    if {"compiled", "int8"} <= variants.keys():
        numbers |= int8_quality(variants, tokenizer)
    numbers["decode_ratio"] = numbers["scratch_tokens_per_s"] / numbers["hf_tokens_per_s"]
    numbers["prefill_ratio"] = numbers["scratch_prefill_tokens_per_s"] / numbers["hf_prefill_tokens_per_s"]
    rows = [(f"decode tok/s ({n_new} new tokens, {len(decode_prompt)}-token prompt)",
             numbers["scratch_tokens_per_s"], numbers["hf_tokens_per_s"]),
            (f"prefill tok/s ({len(prefill_prompt)}-token prompt)",
             numbers["scratch_prefill_tokens_per_s"], numbers["hf_prefill_tokens_per_s"])]
    for prefix, weights in VARIANTS.items():
        if prefix in variants:
            rows.append((f"decode tok/s, decode step compiled, {weights} weights", numbers[f"{prefix}_tokens_per_s"],
                         numbers["hf_tokens_per_s"]))
    for kind in llama_ggufs:
        key = f"llama_cpp_{kind.lower()}"
        rows.append((f"decode tok/s, llama.cpp, {kind} GGUF", numbers[f"{key}_tokens_per_s"],
                     numbers["hf_tokens_per_s"]))
        rows.append((f"prefill tok/s, llama.cpp, {kind} GGUF", numbers[f"{key}_prefill_tokens_per_s"],
                     numbers["hf_prefill_tokens_per_s"]))
    if args.no_cache:
        numbers["scratch_no_cache_tokens_per_s"] = args.no_cache_tokens / no_cache_s["scratch"]
        rows.append((f"decode tok/s without KV cache ({args.no_cache_tokens} new tokens)",
                     numbers["scratch_no_cache_tokens_per_s"], None))
    print_table(rows)
    print("ratio = the row (the notebook, or llama.cpp where named) / transformers, above 1: faster than transformers. "
          "Decode times the whole generate call; "
          f"the prefill of its {len(decode_prompt)}-token prompt is included and negligible.")
    if args.no_cache:
        print(f"the KV cache makes the notebook's decode "
              f"{numbers['scratch_tokens_per_s'] / numbers['scratch_no_cache_tokens_per_s']:.1f}x faster "
              f"(without it, each new token runs the whole sequence again)")

    for kind in llama_ggufs:
        if f"{LLAMA_CPP_TYPES[kind]}_to_llama_cpp" in numbers:
            print(f"decode, the notebook's compiled step with {VARIANTS[LLAMA_CPP_TYPES[kind]]} weights against "
                  f"llama.cpp {kind}: {numbers[f'{LLAMA_CPP_TYPES[kind]}_to_llama_cpp']:.2f}x")
    ours, theirs = decoded["scratch"], decoded["hf"]
    same = ours == theirs
    if same:
        print(f"same tokens: yes, both generated the same {n_new} greedy tokens")
    else:
        i = first_difference(ours, theirs)
        print(f"same tokens: NO, they diverge at new token {i}: scratch "
              f"{ours[i:i + 5]!r} ({tokenizer.decode(ours[i:i + 5])!r}), transformers {theirs[i:i + 5]!r} "
              f"({tokenizer.decode(theirs[i:i + 5])!r})")
    for prefix in variants:
        print(f"{prefix}: the same {n_new} greedy tokens as transformers: {decoded[prefix] == theirs}")
    if "int8_top1" in numbers:
        print(f"int8 against float32 on the notebook's passage, teacher-forced: top-1 agreement "
              f"{numbers['int8_top1']:.1%}, mean KL {numbers['int8_kl']:.1e}, perplexity "
              f"{numbers['int8_perplexity']:.2f} against {numbers['float32_perplexity']:.2f}")
    print(f"text: {DECODE_PROMPT + tokenizer.decode(ours)!r}")
    report = {**{k: float(f"{v:.4g}") for k, v in numbers.items()}, "same_tokens": same,
              **{f"{prefix}_same_tokens": decoded[prefix] == theirs for prefix in variants},
              "threads": torch.get_num_threads(), "repeats": args.repeats, "new_tokens": n_new,
              "path": "plain" if args.plain else "fast", "compiled": args.compile,
              "prompt_tokens": len(prefill_prompt), "decode_prompt_tokens": len(decode_prompt)}
    if args.batch is not None:
        if "generate_batch" not in nb:
            print("\nbatch: the notebook has no generate_batch(model, prompts, max_new_tokens, stop_tokens=()) yet: "
                  "only transformers is timed", flush=True)
        entries = batch_benchmark(nb, scratch, hf, tokenizer, args.batch, n_new, args.repeats)
        print_batch_table(entries, n_new)
        report["batch"] = [{k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in e.items()}
                           for e in entries]
        if args.plot is not None:
            write_batch_plot(entries, args.plot, f"greedy, {n_new} new tokens per row, float32, "
                                                 f"{torch.get_num_threads()} threads, {cpu_model()}")
            print(f"plot: {shown(args.plot)}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
