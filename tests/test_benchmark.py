"""scripts/benchmark.py runs end to end with tiny settings and ends with its JSON line.

Nothing here asserts a timing: the numbers only have to be there and positive.
"""

import json
import math
import subprocess
import sys

from notebook_runner import REPO

REQUIRED = ("scratch_tokens_per_s", "hf_tokens_per_s", "scratch_prefill_tokens_per_s", "hf_prefill_tokens_per_s",
            "decode_ratio", "prefill_ratio")
VARIANT_KEYS = ("compiled_tokens_per_s", "bf16_tokens_per_s", "int8_tokens_per_s", "compiled_ratio", "bf16_ratio",
                "int8_ratio", "int8_top1", "int8_kl", "float32_perplexity", "int8_perplexity")


def test_benchmark_prints_its_numbers_as_json():
    cmd = [sys.executable, "scripts/benchmark.py", "--repeats", "1", "--new-tokens", "4", "--prompt-tokens", "16",
           "--threads", "1", "--no-cache", "--no-cache-tokens", "2"]
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


def test_benchmark_rejects_bad_arguments():
    result = subprocess.run([sys.executable, "scripts/benchmark.py", "--repeats", "0"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--repeats must be at least 1" in result.stderr
