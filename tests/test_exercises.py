"""The "Try it" exercises: open by default, every solution passes its check, and typical wrong answers are named,
in the language of the edition: English in llama3-from-scratch.ipynb, Chinese in the zh edition (LANGUAGE = "zh").

One papermill run per edition, with every solution filled in (scripts/exercise_solutions.py), on a tiny
checkpoint; a cell appended to it then puts in each wrong answer below, one at a time, and re-runs the
exercise's own check cell, read from the notebook; then each exercise's open answer cell, and its check again.
"""

import re

import nbformat
import pytest

import exercises
from exercise_solutions import SOLUTIONS, exercise_cells, solved
from llama3_files import InputError
from notebook_runner import NOTEBOOK, ZH_NOTEBOOK, run_notebook

notebook = nbformat.read(NOTEBOOK, as_version=4)
EDITIONS = {"en": NOTEBOOK, "zh": ZH_NOTEBOOK}  # each edition answers in its own language: LANGUAGE "en", "zh"


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

# (exercise, mistake) -> a word or phrase of its message in each language that names the mistake. Each one is
# distinctive: no other wrong answer's message of the same exercise has it. The Chinese one holds Chinese.
MISTAKE_WORDS = {
    ("2", "missing_bos"): {"en": "is missing at the start", "zh": "开头缺少 BOS"},
    ("2", "extra_eos"): {"en": "does not end with it", "zh": "不以它结尾"},
    ("2", "wrong_length"): {"en": "not one character", "zh": "而不是一个字符"},
    ("4", "position_not_id"): {"en": "the token's *position*", "zh": "这个 token 的位置"},
    ("4", "wrong_shape"): {"en": "wrong shape", "zh": "形状不对"},
    ("5", "forgot_upcast"): {"en": "overflows float16", "zh": "在 float16 中会溢出"},
    ("5", "forgot_cast_back"): {"en": "on a float16 input your function returns", "zh": "你的函数返回的是"},
    ("5", "forgot_eps"): {"en": "wrong on a tiny input", "zh": "在很小的输入"},
    ("5", "forgot_weight"): {"en": "the weight is missing", "zh": "缺少权重"},
    ("5", "layer_norm"): {"en": "does not subtract the mean", "zh": "不减去均值"},
    ("5", "wrong_shape"): {"en": "wrong shape", "zh": "形状不对"},
    ("5", "raised"): {"en": "your function raised AttributeError", "zh": "你的函数抛出了 AttributeError"},
    ("6a", "off_by_one"): {"en": "positions count from 0", "zh": "位置从 0 开始计数"},
    ("6a", "wrong_direction"): {"en": "the wrong way", "zh": "方向反了"},
    ("6a", "not_rotated"): {"en": "unrotated", "zh": "没有旋转"},
    ("6a", "half_layout"): {"en": "pairs neighbours", "zh": "相邻的数配对"},
    ("6b", "zero_mask"): {"en": "masked with 0", "zh": "用 0 做了掩码"},
    ("6b", "no_mask"): {"en": "no causal mask", "zh": "没有因果掩码"},
    ("6b", "mask_diagonal"): {"en": "also hides the diagonal", "zh": "把对角线也遮住了"},
    ("6b", "mask_transposed"): {"en": "hides the past", "zh": "遮住了过去"},
    ("6b", "wrong_dim"): {"en": "wrong dimension", "zh": "维度不对"},
    ("7", "modulo"): {"en": "times in a row", "zh": "连续重复"},
    ("7", "wrong_length"): {"en": "one per query head", "zh": "每个查询头一项"},
    ("9", "gate_swapped"): {"en": "wrong branch", "zh": "用错了分支"},
    ("9", "relu"): {"en": "that is ReLU", "zh": "这是 ReLU"},
    ("9", "gelu"): {"en": "that is GELU", "zh": "这是 GELU"},
    ("9", "no_gate"): {"en": "the product with x·W3ᵀ is missing", "zh": "缺少与 x·W3ᵀ 的乘积"},
    ("11", "last_position"): {"en": "prediction at the last position", "zh": "最后一个位置上的预测"},
    ("11", "wrong_layer"): {"en": "the input of the last layer", "zh": "最后一层的输入"},
    ("12", "forgot_scale"): {"en": "division by sqrt(Dh) is missing", "zh": "缺少除以 sqrt(Dh)"},
    ("12", "forgot_rope"): {"en": "RoPE is missing", "zh": "缺少 RoPE"},
    ("12", "wrong_kv_head"): {"en": "key/value head 0's", "zh": "这些键来自键/值头 0"},
    ("12", "wrong_layer_0"): {"en": "those are the scores of", "zh": "请换成第"},
    ("12", "masked"): {"en": "after the mask", "zh": "加掩码之后"},
    ("15", "all_heads"): {"en": "(GQA)", "zh": "分组查询注意力"},
    ("15", "keys_only"): {"en": "half of it", "zh": "只算了一半"},
    ("15", "float32"): {"en": "(4 bytes)", "zh": "4 字节"},
    ("15", "thousands"): {"en": "not 8,000", "zh": "而不是 8,000"},
    ("15", "units"): {"en": "give it in bytes", "zh": "以字节为单位作答"},
    ("16", "not_renormalized"): {"en": "not renormalized", "zh": "没有重新归一化"},
    ("16", "sorted_order"): {"en": "sorted order", "zh": "排序后的顺序"},
    ("16", "stopped_early"): {"en": "stopped before", "zh": "之前就停下了"},
    ("18", "from_longest"): {"en": "from the longest prompt", "zh": "从最长的提示词"},
    ("18", "from_zero"): {"en": "counts from position 0", "zh": "从位置 0 开始数"},
    ("18", "per_row"): {"en": "serves all rows at once", "zh": "同时处理所有行"},
}

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")  # Chinese characters and full-width punctuation
ENGLISH_SENTENCE = re.compile(r"\b[A-Za-z]+(?: [A-Za-z]+){2,}\b")  # three English words in a row
QUOTED = re.compile(r"“[^”]*”")  # Python's own error message, quoted as it is in a Chinese verdict
LABEL = {"en": "{mark} Try it {exercise}: ", "zh": "{mark} 动手试试 {exercise}："}
VERDICT_START = {"en": {"open": "open. Write your answer in the cell above", "correct": "correct.", "wrong": ""},
                 "zh": {"open": "未作答。请在上面的单元格里写出你的答案", "correct": "正确。", "wrong": ""}}
MARK = {"open": "○", "correct": "✓", "wrong": "✗"}


def language_problems(text: str, language: str, exercise: str, status: str) -> list[str]:
    """Why a verdict's text is not in `language` (empty: it is): its label, then its words."""
    found = []
    label = LABEL[language].format(mark=MARK[status], exercise=exercise)
    if not text.startswith(label + VERDICT_START[language][status]):
        found.append(f"does not start with {label + VERDICT_START[language][status]!r}")
    if language == "en" and CJK.search(text):
        found.append(f"Chinese in English: {CJK.search(text).group()!r}")
    if language == "zh":
        message = QUOTED.sub("", text.removeprefix(label))
        if not CJK.search(message):
            found.append("no Chinese in the message")
        if ENGLISH_SENTENCE.search(message):
            found.append(f"English in Chinese: {ENGLISH_SENTENCE.search(message).group()!r}")
    return found


TRY_ALL = """
_checks = {checks!r}
solved_verdicts = {{e: eval(source, globals()) for e, source in _checks.items()}}  # the solutions, checked again
solved_verdicts = {{e: (v.status, v.mistake, repr(v)) for e, v in solved_verdicts.items()}}
wrong_verdicts = []
for _exercise, _code, _mistake in {wrong!r}:
    exec(_code, globals())
    _v = eval(_checks[_exercise], globals())
    wrong_verdicts.append((_exercise, _mistake, _v.status, _v.mistake, repr(_v)))
open_verdicts = {{}}
for _exercise, _code in {open_cells!r}.items():  # each answer cell as the reader finds it, then its check
    exec(_code, globals())
    _v = eval(_checks[_exercise], globals())
    open_verdicts[_exercise] = (_v.status, _v.mistake, repr(_v))
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


@pytest.mark.parametrize("language", EDITIONS)
def test_unsolved_every_check_says_open_and_the_run_goes_on(language):
    nb = nbformat.read(EDITIONS[language], as_version=4)
    for exercise, cell in check_cells(nb).items():
        text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs)
        assert language_problems(text, language, exercise, "open") == [], (exercise, text)
        assert all(o.output_type != "error" for o in cell.outputs)


@pytest.fixture(scope="module", params=list(EDITIONS))
def solved_run(request, tiny_checkpoint_factory, tmp_path_factory):
    """(language, saved verdicts, executed notebook) of one edition, solved, run with its own LANGUAGE."""
    language = request.param
    edition = nbformat.read(EDITIONS[language], as_version=4)
    open_cells = {exercise: cell.source for exercise, cell in exercise_cells(edition).items()}
    nb = solved(edition)
    checks = {exercise: cell.source for exercise, cell in check_cells(nb).items()}
    nb.cells.append(nbformat.v4.new_code_cell(TRY_ALL.format(checks=checks, wrong=WRONG_ANSWERS,
                                                             open_cells=open_cells)))
    work = tmp_path_factory.mktemp(f"solved_{language}")
    saved = run_notebook(work, names=("solved_verdicts", "wrong_verdicts", "open_verdicts"), notebook=nb,
                         MODEL_DIR=str(tiny_checkpoint_factory("gqa4")), MAX_NEW_TOKENS=4)
    return language, saved, nbformat.read(work / "output.ipynb", as_version=4)


def test_every_solution_passes_its_check_in_the_editions_language(solved_run):
    language, saved, executed = solved_run
    assert set(saved["solved_verdicts"]) == set(SOLUTIONS)
    for exercise, (status, mistake, text) in saved["solved_verdicts"].items():
        assert status == "correct", text
        assert language_problems(text, language, exercise, "correct") == [], text
    for exercise, cell in check_cells(executed).items():  # and as the notebook showed it
        shown = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        assert language_problems(shown, language, exercise, "correct") == [], shown


def test_every_open_answer_is_called_open_in_the_editions_language(solved_run):
    language, saved, _ = solved_run
    assert set(saved["open_verdicts"]) == set(SOLUTIONS)
    for exercise, (status, mistake, text) in saved["open_verdicts"].items():
        assert (status, mistake) == ("open", None), text
        assert language_problems(text, language, exercise, "open") == [], text


def test_every_exercise_has_typical_wrong_answers_each_with_its_words():
    assert {e for e, *_ in WRONG_ANSWERS} == set(SOLUTIONS)
    assert len({(e, m) for e, _, m in WRONG_ANSWERS}) == len(WRONG_ANSWERS)
    assert set(MISTAKE_WORDS) == {(e, m) for e, _, m in WRONG_ANSWERS}
    assert all(CJK.search(words["zh"]) and not CJK.search(words["en"]) for words in MISTAKE_WORDS.values())


@pytest.mark.parametrize("case", range(len(WRONG_ANSWERS)),
                         ids=[f"{e}-{m}" for e, _, m in WRONG_ANSWERS])
def test_a_typical_wrong_answer_is_named_in_the_editions_language(solved_run, case):
    language, saved, _ = solved_run
    verdicts = saved["wrong_verdicts"]
    assert len(verdicts) == len(WRONG_ANSWERS)
    exercise, expected, status, mistake, text = verdicts[case]
    assert (exercise, expected) == (WRONG_ANSWERS[case][0], WRONG_ANSWERS[case][2])
    assert (status, mistake) == ("wrong", expected), text
    assert language_problems(text, language, exercise, "wrong") == [], text
    word = MISTAKE_WORDS[exercise, expected][language]
    assert word in text, f"{word!r} not in {text}"
    others = [other for e, m, _, _, other in verdicts if e == exercise and m != expected]
    assert not [other for other in others if word in other], f"{word!r} does not tell {expected} from the others"


# --- the language of the checks, without a notebook ---------------------------------------------------------------

@pytest.fixture
def language():
    """set_language for one test; English again afterwards."""
    yield exercises.set_language
    exercises.set_language("en")


@pytest.mark.parametrize("value", ["fr", None, 1, "EN", "", ["zh"]], ids=repr)
def test_set_language_refuses_anything_but_en_or_zh(language, value):
    language("zh")
    with pytest.raises(InputError, match=r"^LANGUAGE = .*'en'.*'zh'") as refused:
        language(value)
    assert "\n" not in str(refused.value) and repr(value) in str(refused.value)
    assert "动手试试" in repr(exercises.check_forward_calls(..., [3, 5], 4, 64))  # still the language it had


def kv_cache_bytes(n_layers, max_len, n_kv_heads, head_dim, bytes_per_value):  # the notebook's, section 15
    return 2 * n_layers * max_len * n_kv_heads * head_dim * bytes_per_value


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_open_correct_and_wrong_verdicts_answer_in_the_language_set(language, lang):
    language(lang)
    params = {"dim": 8192, "n_layers": 80, "n_heads": 64, "n_kv_heads": 8}
    right = kv_cache_bytes(80, 8192, 8, 128, 2)
    for answer, status, mistake in [(..., "open", None), (right, "correct", None), (right // 2, "wrong", "keys_only"),
                                    (right + 1, "wrong", "wrong_values"), ("many", "wrong", "not_a_number")]:
        verdict = exercises.check_kv_cache_bytes(answer, params, 8192, 2, kv_cache_bytes)
        assert (verdict.status, verdict.mistake, verdict.language) == (status, mistake, lang)
        assert language_problems(repr(verdict), lang, "15", status) == [], repr(verdict)
    assert "2,684,354,560" in repr(exercises.check_kv_cache_bytes(right, params, 8192, 2, kv_cache_bytes))


def test_a_verdict_keeps_the_language_it_was_made_in(language):
    language("zh")
    verdict = exercises.check_forward_calls(3, [3, 5], 4, 64)
    language("en")
    assert repr(verdict).startswith("✗ 动手试试 18：你给的是 3 次") and verdict.mistake == "wrong_values"


def test_the_language_check_fails_on_the_wrong_language():
    # the helper the tests above rely on, on texts in the wrong language
    assert language_problems("✗ Try it 7: that is i % H_KV.", "en", "7", "wrong") == []
    assert language_problems("✗ Try it 7: 这是 i % H_KV。", "en", "7", "wrong")
    assert language_problems("✗ 动手试试 7：这是 i % H_KV。", "zh", "7", "wrong") == []
    assert language_problems("✗ 动手试试 7：that is i % H_KV (torch's repeat)。", "zh", "7", "wrong")
    assert language_problems("✗ 动手试试 7：这是 i % H_KV：query head i reads i // N_REP。", "zh", "7", "wrong")
    assert language_problems("✗ Try it 7: 这是 i % H_KV。", "zh", "7", "wrong")  # the label too
    assert language_problems("✓ 动手试试 7：correct.", "zh", "7", "correct")
    assert language_problems("○ Try it 7: open.", "en", "7", "open")
