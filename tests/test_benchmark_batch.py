"""scripts/benchmark.py --batch runs end to end with tiny settings: its table, its JSON "batch" entries, its plot.

Run in this process (main()), twice on the same loaded models: once with a notebook that has no generate_batch
(the batch benchmark times transformers only and says so), once with one (the notebook's own when it has it,
else a stand-in that calls its generate once per prompt). Nothing here asserts a timing.
"""

import functools
import json
import math

import pytest

import benchmark
from notebook_code import load_notebook_functions

ARGS = ["--repeats", "1", "--new-tokens", "2", "--prompt-tokens", "16", "--threads", "1", "--batch", "3,1"]


def one_at_a_time(nb):
    def generate_batch(model, prompts, max_new_tokens, stop_tokens=()):
        return [nb["generate"](model, p, max_new_tokens, stop_tokens=stop_tokens) for p in prompts]
    return generate_batch


@pytest.fixture
def cached_models(monkeypatch):
    """Each model loaded once for both runs (dequantizing the GGUF file takes most of the time)."""
    monkeypatch.setattr(benchmark, "load_hf_model", functools.lru_cache(benchmark.load_hf_model))
    real_load_scratch, loaded = benchmark.load_scratch_model, {}

    def load_scratch_model(nb, model_dir, *args, **kwargs):
        if model_dir not in loaded:
            loaded[model_dir] = real_load_scratch(nb, model_dir, *args, **kwargs)
        return loaded[model_dir]

    monkeypatch.setattr(benchmark, "load_scratch_model", load_scratch_model)


def run_benchmark(monkeypatch, capsys, nb, argv):
    monkeypatch.setattr(benchmark, "load_notebook_functions", lambda: nb)
    assert benchmark.main(argv) == 0
    out = capsys.readouterr().out
    return out, json.loads(out.strip().splitlines()[-1])


def test_batch_benchmark_with_and_without_the_notebooks_generate_batch(cached_models, monkeypatch, capsys, tmp_path):
    nb = load_notebook_functions()
    without = {k: v for k, v in nb.items() if k != "generate_batch"}
    out, numbers = run_benchmark(monkeypatch, capsys, without, ARGS)
    assert "the notebook has no generate_batch" in out
    assert [e["batch_size"] for e in numbers["batch"]] == [1, 3]  # sorted
    for e in numbers["batch"]:
        assert math.isfinite(e["hf_tokens_per_s"]) and e["hf_tokens_per_s"] > 0
        assert e["scratch_tokens_per_s"] is None and e["same_tokens"] is None
    assert numbers["batch"][1]["prompt_tokens"] == [8, 5, 6]  # the decode prompt first, then shorter ones

    with_batch = dict(nb)
    with_batch.setdefault("generate_batch", one_at_a_time(nb))
    plot = tmp_path / "batch.png"
    out, numbers = run_benchmark(monkeypatch, capsys, with_batch, ARGS + ["--plot", str(plot)])
    assert "no generate_batch" not in out
    for e in numbers["batch"]:
        assert math.isfinite(e["scratch_tokens_per_s"]) and e["scratch_tokens_per_s"] > 0 and e["ratio"] > 0
        assert e["same_tokens"] is True, e  # float32 greedy: the same 2 tokens in every row
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["batch.png"]  # no temporary file left
    assert any(line.startswith("batched greedy generation") for line in out.splitlines())


def test_without_batch_the_json_has_no_batch_key():
    assert benchmark.parse_args([]).batch is None  # run() adds "batch" to its JSON line only with --batch


@pytest.mark.parametrize("argv, message", [
    (["--batch", "0,x"], "argument --batch: must be a comma list of batch sizes of at least 1, like 1,4,16; "
                         "got '0,x'"),
    (["--batch", "4,,16"], "got '4,,16'"),
    (["--batch", "1,-2"], "got '1,-2'"),
    (["--plot", "x.png"], "--plot needs --batch"),
    (["--batch", "1", "--plot", "x.jpg"], "the file name must end in .png"),
    (["--batch", "1", "--plot", "no/such/folder/x.png"], "does not exist"),
])
def test_bad_batch_arguments_end_in_one_error_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(argv)
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("benchmark.py: error:")]
    assert len(errors) == 1 and message in errors[0]
