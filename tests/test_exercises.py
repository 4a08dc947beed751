"""The "Try it" exercises: open by default, every solution passes its check, and typical wrong answers are named.

One papermill run of the notebook with every solution filled in (scripts/exercise_solutions.py) on a tiny
checkpoint; a cell appended to it then puts in each wrong answer below, one at a time, and re-runs the
exercise's own check cell, read from the notebook.
"""

import re

import nbformat
import pytest

from exercise_solutions import SOLUTIONS, exercise_cells, solved
from notebook_runner import NOTEBOOK, ZH_NOTEBOOK, run_notebook

notebook = nbformat.read(NOTEBOOK, as_version=4)


def check_cells(nb) -> dict[str, object]:
    """Exercise id -> the code cell right after its answer cell: the check call."""
    cells, found = nb.cells, {}
    answers = {id(cell): exercise for exercise, cell in exercise_cells(nb).items()}
    for i, cell in enumerate(cells[:-1]):
        if id(cell) in answers:
            found[answers[id(cell)]] = cells[i + 1]
    return found


def section_of(nb, cell) -> int:
    number = None
    for c in nb.cells:
        if c.cell_type == "markdown" and (m := re.match(r"## (\d+)\. ", c.source)):
            number = int(m.group(1))
        if c is cell:
            return number
    raise ValueError("cell not in notebook")


# (exercise, a wrong answer a reader might write, the mistake the check must name)
WRONG_ANSWERS = [
    ("2", 'my_ids = llama3_tokenizer.encode("Hello, world!")', "missing_bos"),
    ("2", 'my_ids = [BOS] + llama3_tokenizer.encode("Hello, world!") + [EOS]', "extra_eos"),
    ("2", 'my_ids = [BOS] + list("Hello, world!".encode())', "wrong_length"),
    ("4", 'my_embedding = model.checkpoint["tok_embeddings.weight"][T - 1].to(dtype)', "position_not_id"),
    ("4", 'my_embedding = model.checkpoint["tok_embeddings.weight"][[prompt_tokens[-1]]].to(dtype)', "wrong_shape"),
    ("5", '''def my_rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight  # no float32''', "forgot_upcast"),
    ("5", '''def my_rms_norm(x, weight, eps):
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)) * weight  # no cast back''',
     "forgot_cast_back"),
    ("5", '''def my_rms_norm(x, weight, eps):
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True))).type_as(x) * weight''', "forgot_eps"),
    ("5", '''def my_rms_norm(x, weight, eps):
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).type_as(x)''', "forgot_weight"),
    ("5", '''def my_rms_norm(x, weight, eps):
    return torch.nn.functional.layer_norm(x.float(), x.shape[-1:], eps=eps).type_as(x) * weight''', "layer_norm"),
    ("5", '''def my_rms_norm(x, weight, eps):
    return x.float().mean(-1)  # a shape slip''', "wrong_shape"),
    ("5", '''def my_rms_norm(x, weight, eps):
    return x.undefined_method()''', "raised"),
    ("6a", '''my_q_at_5 = apply_rope(q[:1], rope_frequencies(Dh, 6, cfg.rope_theta)[4][None])[0]''', "off_by_one"),
    ("6a", '''my_q_at_5 = apply_rope(q[:1], rope_frequencies(Dh, 6, cfg.rope_theta)[5].conj()[None])[0]''',
     "wrong_direction"),
    ("6a", "my_q_at_5 = q[0]", "not_rotated"),
    ("6a", '''angle = torch.angle(rope_frequencies(Dh, 6, cfg.rope_theta)[5])
cos, sin = torch.cat([angle.cos()] * 2), torch.cat([angle.sin()] * 2)
half = Dh // 2
my_q_at_5 = q[0] * cos + torch.cat([-q[0][half:], q[0][:half]]) * sin  # Hugging Face's rotate_half''', "half_layout"),
    ("6b", '''def my_attention_weights(scores):
    future = torch.ones_like(scores, dtype=torch.bool).triu(1)
    return torch.softmax(scores.float().masked_fill(future, 0.0), dim=-1).type_as(scores)  # 0, not -inf''',
     "zero_mask"),
    ("6b", '''def my_attention_weights(scores):
    return torch.softmax(scores.float() + torch.zeros_like(scores).triu(1), dim=-1).type_as(scores)''', "no_mask"),
    ("6b", '''def my_attention_weights(scores):
    mask = torch.full_like(scores, float("-inf")).triu(0)  # hides the diagonal too
    return torch.softmax((scores + mask).float(), dim=-1).type_as(scores)''', "mask_diagonal"),
    ("6b", '''def my_attention_weights(scores):
    mask = torch.full_like(scores, float("-inf")).tril(-1)
    return torch.softmax((scores + mask).float(), dim=-1).type_as(scores)''', "mask_transposed"),
    ("6b", '''def my_attention_weights(scores):
    mask = torch.full_like(scores, float("-inf")).triu(1)
    return torch.softmax((scores + mask).float(), dim=0).type_as(scores)''', "wrong_dim"),
    ("7", "my_kv_head_of = [h % H_KV for h in range(H)]", "modulo"),
    ("7", "my_kv_head_of = list(range(H_KV))", "wrong_length"),
    ("9", '''def my_feed_forward(x, w):
    return linear(torch.nn.functional.silu(linear(x, w["w3"])) * linear(x, w["w1"]), w["w2"])''', "gate_swapped"),
    ("9", '''def my_feed_forward(x, w):
    return linear(torch.relu(linear(x, w["w1"])) * linear(x, w["w3"]), w["w2"])''', "relu"),
    ("9", '''def my_feed_forward(x, w):
    return linear(torch.nn.functional.gelu(linear(x, w["w1"])) * linear(x, w["w3"]), w["w2"])''', "gelu"),
    ("9", '''def my_feed_forward(x, w):
    return linear(torch.nn.functional.silu(linear(x, w["w1"])), w["w2"])''', "no_gate"),
    ("11", "my_guess = int(output_logits(model, hidden_states[-1][-1]).argmax())", "last_position"),
    ("11", "my_guess = int(output_logits(model, hidden_states[-2][-2]).argmax())", "wrong_layer"),
    ("12", '''w_last = layer_weights(model, L - 1)
q_last, k_last, _ = project_qkv(rms_norm(hidden_states[L - 1], w_last["attention_norm"], cfg.norm_eps), w_last, H, H_KV)
q_last, k_last = apply_rope(q_last, freqs_cis), apply_rope(k_last, freqs_cis)
my_scores = q_last[:, H - 1] @ k_last[:, (H - 1) // N_REP].T  # no sqrt(Dh)''', "forgot_scale"),
    ("12", '''w_last = layer_weights(model, L - 1)
q_last, k_last, _ = project_qkv(rms_norm(hidden_states[L - 1], w_last["attention_norm"], cfg.norm_eps), w_last, H, H_KV)
my_scores = q_last[:, H - 1] @ k_last[:, (H - 1) // N_REP].T / math.sqrt(Dh)  # no RoPE''', "forgot_rope"),
    ("12", '''w_last = layer_weights(model, L - 1)
q_last, k_last, _ = project_qkv(rms_norm(hidden_states[L - 1], w_last["attention_norm"], cfg.norm_eps), w_last, H, H_KV)
q_last, k_last = apply_rope(q_last, freqs_cis), apply_rope(k_last, freqs_cis)
my_scores = q_last[:, H - 1] @ k_last[:, 0].T / math.sqrt(Dh)  # key/value head 0''', "wrong_kv_head"),
    ("12", '''w0 = layer_weights(model, 0)
q0, k0, _ = project_qkv(rms_norm(hidden_states[0], w0["attention_norm"], cfg.norm_eps), w0, H, H_KV)
q0, k0 = apply_rope(q0, freqs_cis), apply_rope(k0, freqs_cis)
my_scores = q0[:, H - 1] @ k0[:, (H - 1) // N_REP].T / math.sqrt(Dh)  # layer 0''', "wrong_layer_0"),
    ("12", '''w_last = layer_weights(model, L - 1)
q_last, k_last, _ = project_qkv(rms_norm(hidden_states[L - 1], w_last["attention_norm"], cfg.norm_eps), w_last, H, H_KV)
q_last, k_last = apply_rope(q_last, freqs_cis), apply_rope(k_last, freqs_cis)
my_scores = q_last[:, H - 1] @ k_last[:, (H - 1) // N_REP].T / math.sqrt(Dh) + mask  # after the mask''', "masked"),
    ("15", "my_kv_bytes = 2 * 80 * 8192 * 64 * 128 * 2  # every query head", "all_heads"),
    ("15", "my_kv_bytes = 80 * 8192 * 8 * 128 * 2  # keys only", "keys_only"),
    ("15", "my_kv_bytes = 2 * 80 * 8192 * 8 * 128 * 4  # float32", "float32"),
    ("15", "my_kv_bytes = 2 * 80 * 8000 * 8 * 128 * 2  # 8K as 8000", "thousands"),
    ("15", "my_kv_bytes = 2.5  # GiB", "units"),
    ("16", "my_top_p = torch.tensor([0.0, 0.4, 0.0, 0.3, 0.0])", "not_renormalized"),
    ("16", "my_top_p = torch.tensor([0.4, 0.3, 0.0, 0.0, 0.0]) / 0.7", "sorted_order"),
    ("16", "my_top_p = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0])  # stopped before the token that crosses p",
     "stopped_early"),
    ("18", "my_forward_calls = more_new_tokens", "from_longest"),
    ("18", "my_forward_calls = min(max(lengths) + more_new_tokens, cfg.max_seq_len)", "from_zero"),
    ("18", "my_forward_calls = B * (min(max(lengths) + more_new_tokens, cfg.max_seq_len) - min(lengths))", "per_row"),
]

TRY_ALL = """
_checks = {checks!r}
solved_verdicts = {{e: eval(source, globals()) for e, source in _checks.items()}}  # the solutions, checked again
solved_verdicts = {{e: (v.status, v.mistake, repr(v)) for e, v in solved_verdicts.items()}}
wrong_verdicts = []
for _exercise, _code, _mistake in {wrong!r}:
    exec(_code, globals())
    _v = eval(_checks[_exercise], globals())
    wrong_verdicts.append((_exercise, _mistake, _v.status, _v.mistake, repr(_v)))
"""


def test_every_exercise_has_a_task_an_open_answer_and_a_check_in_eight_sections_or_more():
    answers, checks = exercise_cells(notebook), check_cells(notebook)
    assert set(answers) == set(checks) == set(SOLUTIONS)
    for exercise, cell in answers.items():
        index = notebook.cells.index(cell)
        task = notebook.cells[index - 1]
        assert task.cell_type == "markdown" and task.source.startswith(f"**Try it {exercise}.**"), exercise
        assert re.search(r"= \.\.\.$|^\s+\.\.\.  # your code", cell.source, re.M), f"{exercise} is not left open"
        assert checks[exercise].source.startswith("exercises.check_"), exercise
    sections = {section_of(notebook, cell) for cell in answers.values()}
    assert len(sections) >= 8 and sections <= set(range(2, 19)), sections


@pytest.mark.parametrize("path", [NOTEBOOK, ZH_NOTEBOOK], ids=["en", "zh"])
def test_unsolved_every_check_says_open_and_the_run_goes_on(path):
    nb = nbformat.read(path, as_version=4)
    for exercise, cell in check_cells(nb).items():
        text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs)
        assert text.startswith(f"○ Try it {exercise}: open"), (exercise, text)
        assert all(o.output_type != "error" for o in cell.outputs)


@pytest.fixture(scope="module")
def solved_run(tiny_checkpoint_factory, tmp_path_factory):
    nb = solved(notebook)
    checks = {exercise: cell.source for exercise, cell in check_cells(nb).items()}
    nb.cells.append(nbformat.v4.new_code_cell(TRY_ALL.format(checks=checks, wrong=WRONG_ANSWERS)))
    work = tmp_path_factory.mktemp("solved")
    saved = run_notebook(work, names=("solved_verdicts", "wrong_verdicts"), notebook=nb,
                         MODEL_DIR=str(tiny_checkpoint_factory("gqa4")), MAX_NEW_TOKENS=4)
    return saved, nbformat.read(work / "output.ipynb", as_version=4)


def test_every_solution_passes_its_check(solved_run):
    saved, executed = solved_run
    assert set(saved["solved_verdicts"]) == set(SOLUTIONS)
    for exercise, (status, mistake, text) in saved["solved_verdicts"].items():
        assert status == "correct", text
    for exercise, cell in check_cells(executed).items():  # and as the notebook showed it
        shown = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        assert shown.startswith(f"✓ Try it {exercise}: correct"), shown


def test_typical_wrong_answers_are_named(solved_run):
    saved, _ = solved_run
    verdicts = saved["wrong_verdicts"]
    assert len(verdicts) == len(WRONG_ANSWERS)
    for exercise, expected, status, mistake, text in verdicts:
        assert (status, mistake) == ("wrong", expected), f"{exercise}, {expected}: {text}"
    assert {e for e, *_ in verdicts} == set(SOLUTIONS)  # every exercise has wrong answers tested
