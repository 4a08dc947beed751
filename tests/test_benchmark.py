"""scripts/benchmark.py runs end to end with tiny settings and ends with its JSON line.

Nothing here asserts a timing: the numbers only have to be there and positive.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from notebook_runner import REPO

# Stand-ins for llama.cpp's tools (--llama-cpp): llama-quantize copies its input, llama-bench prints one CSV row whose
# tokens/s encode what it was asked (type, prompt or generation, length), and each logs its arguments.
STUB_QUANTIZE = """#!{python}
import shutil, sys
with open(sys.argv[0] + ".log", "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
if "FAIL" in sys.argv[-1]:
    sys.exit("llama-quantize: no such type")
shutil.copyfile(sys.argv[-3], sys.argv[-2])
"""
STUB_BENCH = """#!{python}
import sys
args = sys.argv[1:]
with open(sys.argv[0] + ".log", "a") as log:
    log.write(" ".join(args) + "\\n")
value = dict(zip(args[::2], args[1::2]))
kind = value["-m"].rsplit(".", 2)[-2]  # NAME.KIND.gguf
n_prompt, n_gen = int(value["-p"]), int(value["-n"])
rate = {{"F32": 1000, "BF16": 2000, "Q8_0": 3000}}[kind] + (500 + n_prompt if n_prompt else n_gen)
print("model_filename,n_prompt,n_gen,avg_ts")
print(f"{{value['-m']}},{{n_prompt}},{{n_gen}},{{rate}}.0")
"""


def stub_llama_cpp(folder: Path) -> Path:
    folder.mkdir()
    for name, text in (("llama-quantize", STUB_QUANTIZE), ("llama-bench", STUB_BENCH)):
        (folder / name).write_text(text.format(python=sys.executable))
        os.chmod(folder / name, 0o755)
    return folder

REQUIRED = ("scratch_tokens_per_s", "hf_tokens_per_s", "scratch_prefill_tokens_per_s", "hf_prefill_tokens_per_s",
            "decode_ratio", "prefill_ratio")
VARIANT_KEYS = ("compiled_tokens_per_s", "bf16_tokens_per_s", "int8_tokens_per_s", "compiled_ratio", "bf16_ratio",
                "int8_ratio", "int8_top1", "int8_kl", "float32_perplexity", "int8_perplexity")


def test_benchmark_prints_its_numbers_as_json(tmp_path):
    bin_dir, ggufs = stub_llama_cpp(tmp_path / "bin"), tmp_path / "ggufs"
    cmd = [sys.executable, "scripts/benchmark.py", "--repeats", "1", "--new-tokens", "4", "--prompt-tokens", "16",
           "--threads", "1", "--no-cache", "--no-cache-tokens", "2", "--llama-cpp", str(bin_dir),
           "--llama-cpp-ggufs", str(ggufs)]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    numbers = json.loads(lines[-1])
    for key in REQUIRED + VARIANT_KEYS + ("scratch_no_cache_tokens_per_s",):
        assert isinstance(numbers[key], float) and math.isfinite(numbers[key]) and numbers[key] > 0, key
    assert numbers["same_tokens"] is True  # float32 greedy: the notebook and transformers pick the same 4 tokens
    assert numbers["compiled_same_tokens"] is True  # the compiled float32 decode step too
    assert 0.9 <= numbers["int8_top1"] <= 1 and 0 < numbers["int8_kl"] < 0.05  # int8 costs a little, not nothing
    assert numbers["threads"] == 1 and numbers["repeats"] == 1
    assert numbers["new_tokens"] == 4 and numbers["prompt_tokens"] == 16
    assert any(line.startswith("decode tok/s") for line in lines) and any(line.startswith("prefill tok/s") for line in lines)

    # llama.cpp, through the stand-ins: each type written once from the demo's GGUF, then timed in every round
    assert sorted(p.name for p in ggufs.iterdir()) == [f"SmolLM2-135M-Instruct.Q4_1.{kind}.gguf"
                                                       for kind in ("BF16", "F32", "Q8_0")]  # no .partial left
    quantized = (bin_dir / "llama-quantize.log").read_text().splitlines()
    assert sorted(line.split()[-1] for line in quantized) == ["BF16", "F32", "Q8_0"]
    assert all(line.startswith("--allow-requantize ") for line in quantized)
    benched = (bin_dir / "llama-bench.log").read_text().splitlines()
    assert len(benched) == 3 * 2 * 2  # 3 types x (decode, prefill) x (warm-up + 1 round)
    assert all("-t 1 " in line and "-r 1 " in line for line in benched)
    for kind, base in (("f32", 1000), ("bf16", 2000), ("q8_0", 3000)):
        assert numbers[f"llama_cpp_{kind}_tokens_per_s"] == base + 4  # llama-bench's own rate: -n 4, no prompt
        assert numbers[f"llama_cpp_{kind}_prefill_tokens_per_s"] == base + 500 + 16  # -p 16, nothing generated
        assert math.isclose(numbers[f"llama_cpp_{kind}_ratio"], (base + 4) / numbers["hf_tokens_per_s"], rel_tol=1e-3)
    for prefix, base in (("compiled", 1000), ("bf16", 2000), ("int8", 3000)):
        assert math.isclose(numbers[f"{prefix}_to_llama_cpp"], numbers[f"{prefix}_tokens_per_s"] / (base + 4),
                            rel_tol=1e-3)
    assert any(line.startswith("decode tok/s, llama.cpp, Q8_0 GGUF") for line in lines)


def test_benchmark_rejects_bad_arguments():
    result = subprocess.run([sys.executable, "scripts/benchmark.py", "--repeats", "0"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--repeats must be at least 1" in result.stderr


def test_benchmark_refuses_a_llama_cpp_folder_it_cannot_use(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "scripts/benchmark.py", "--repeats", "1", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    result = run("--llama-cpp", str(tmp_path / "missing"))
    assert result.returncode == 2 and "no such folder" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run("--llama-cpp", str(tmp_path / "empty"), "--llama-cpp-ggufs", str(tmp_path / "ggufs"))
    assert result.returncode == 2 and "no executable llama-quantize" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    bin_dir = stub_llama_cpp(tmp_path / "bin")  # a llama-quantize that fails on one type
    (bin_dir / "llama-quantize").write_text(STUB_QUANTIZE.format(python=sys.executable).replace('"FAIL"', '"BF16"'))
    result = run("--llama-cpp", str(bin_dir), "--llama-cpp-ggufs", str(tmp_path / "ggufs"))
    assert result.returncode == 2 and "could not write BF16" in result.stderr and "no such type" in result.stderr
    assert not list((tmp_path / "ggufs").glob("*.partial")), "a failed llama-quantize leaves no partial file"
