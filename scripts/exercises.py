"""The checks of the notebook's "Try it" exercises.

Usage, in the notebook (each exercise: a task, a cell for the reader's answer, then one check call):
    import exercises
    exercises.set_language(LANGUAGE)  # "en" or "zh": the language the checks answer in
    exercises.check_rms_norm(my_rms_norm, rms_norm, h, layer["attention_norm"], cfg.norm_eps)

Every check compares the reader's answer with the notebook's own result, and returns a `Verdict` that
Jupyter shows as one line: open (the answer is still `...`, or the function returns None), correct, or
what is wrong (the shape, the values and where, or a known mistake by name: a forgotten float32 step, a
mask of 0 instead of -inf, ...). A check never raises, so the notebook runs top to bottom with every
exercise open. The solutions, for teachers, are in scripts/exercise_solutions.py.

Every message is written in English and in Chinese side by side, `_t(english, chinese)`, with the same numbers
in both: the language set by set_language picks one. A known mistake's name (Verdict.mistake, e.g.
"forgot_upcast") is the same in both languages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from llama3_files import InputError

OPEN, CORRECT, WRONG = "open", "correct", "wrong"
LANGUAGES = ("en", "zh")  # English, Chinese (the Chinese edition of the notebook sets "zh")
_language = "en"


def set_language(language: str) -> None:
    """The language every check answers in from now on: "en" or "zh". Anything else raises InputError."""
    global _language
    if not isinstance(language, str) or language not in LANGUAGES:
        raise InputError(f"LANGUAGE = {language!r}: use 'en' (English) or 'zh' (Chinese), a string in quotes: "
                         "the language the exercises' checks answer in")
    _language = language


def _t(en: str, zh: str) -> str:
    """The English or the Chinese text of a message, as set_language chose."""
    return zh if _language == "zh" else en


@dataclass(frozen=True)
class Verdict:
    exercise: str
    status: str  # OPEN, CORRECT or WRONG
    message: str
    mistake: str | None = None  # the name of a known mistake (e.g. "forgot_upcast"); the tests read it
    language: str = field(default_factory=lambda: _language)  # the language of the message

    def __repr__(self) -> str:  # what the notebook shows
        mark = {OPEN: "○", CORRECT: "✓", WRONG: "✗"}[self.status]
        label = {"en": f"Try it {self.exercise}: ", "zh": f"动手试试 {self.exercise}："}[self.language]
        return f"{mark} {label}{self.message}"


def _open(exercise: str) -> Verdict:
    return Verdict(exercise, OPEN, _t("open. Write your answer in the cell above (replace the ...), then run both "
                                      "cells.", "未作答。请在上面的单元格里写出你的答案（替换 ...），然后运行这两个单元格。"))


def _right(exercise: str, note: str = "") -> Verdict:
    return Verdict(exercise, CORRECT, _t("correct.", "正确。") + (_t(" ", "") + note if note else ""))


def _wrong(exercise: str, message: str, mistake: str) -> Verdict:
    return Verdict(exercise, WRONG, message, mistake)


def _is_open(answer) -> bool:
    return answer is ... or answer is None


def _call(exercise: str, fn: Callable, *args) -> tuple[object, Verdict | None]:
    """fn(*args), or the verdict that says it is open, not callable, or raised."""
    if _is_open(fn):
        return None, _open(exercise)
    if not callable(fn):
        kind = type(fn).__name__
        return None, _wrong(exercise, _t(f"expected a function, got {kind}.", f"这里应当是一个函数，你给的是 {kind}。"),
                            "not_a_function")
    try:
        result = fn(*[a.clone() if isinstance(a, Tensor) else a for a in args])  # the reader cannot spoil our inputs
    except Exception as error:  # the reader's code: say what it raised, never stop the notebook
        kind = type(error).__name__  # Python's own message stays as Python wrote it, quoted in the Chinese
        return None, _wrong(exercise, _t(f"your function raised {kind}: {error}", f"你的函数抛出了 {kind}：“{error}”"),
                            "raised")
    if result is None:
        return None, _open(exercise)
    return result, None


def _tolerance(expected: Tensor) -> tuple[float, float]:
    """(rtol, atol as a fraction of the largest |value|): rounding of the compute dtype, no more."""
    return (3e-2, 1e-2) if expected.dtype in (torch.bfloat16, torch.float16) else (1e-3, 1e-4)


def _close(answer: Tensor, expected: Tensor) -> bool:
    if answer.shape != expected.shape:
        return False
    a, e = answer.detach().float().cpu(), expected.detach().float().cpu()
    if not torch.equal(torch.isinf(a) & (a < 0), torch.isinf(e) & (e < 0)):
        return False  # -inf where the expected has it (a mask), and only there
    finite = torch.isfinite(e)
    rtol, atol = _tolerance(expected)
    scale = float(e[finite].abs().max()) if finite.any() else 1.0
    return bool(torch.isfinite(a[finite]).all()) and bool(
        ((a[finite] - e[finite]).abs() <= atol * scale + rtol * e[finite].abs()).all())


def _where(answer: Tensor, expected: Tensor) -> str:
    """Where the values differ: how many, and the first place, with both numbers."""
    a, e = answer.detach().float().cpu(), expected.detach().float().cpu()
    rtol, atol = _tolerance(expected)
    finite = torch.isfinite(e)
    scale = float(e[finite].abs().max()) if finite.any() else 1.0
    same_inf = torch.isinf(a) & torch.isinf(e) & (a.sign() == e.sign())
    bad = ~((a - e).abs() <= atol * scale + rtol * e.abs()) & ~same_inf | (torch.isinf(e) != torch.isinf(a))
    if not bad.any():
        return _t("the values agree, but not the places of -inf.", "数值一致，但 -inf 的位置不一致。")
    index = tuple(int(i) for i in bad.nonzero()[0])
    n, total, at, yours, expected_value = int(bad.sum()), bad.numel(), list(index), f"{a[index].item():.6g}", \
        f"{e[index].item():.6g}"
    return _t(f"{n} of {total} values differ; the first at {at}: yours {yours}, expected {expected_value}.",
              f"{total} 个数值中有 {n} 个不同；第一个在 {at}：你的是 {yours}，应为 {expected_value}。")


def _compare(exercise: str, answer, expected: Tensor, what: str, mistakes: Mapping[str, tuple[Tensor, str]] = {},
             note: str = "") -> Verdict:
    """The common check of a tensor answer: open, type, known mistakes, shape, then values.

    `what` names the answer in the message ("your result", "你的结果"); `note` is added to a correct verdict.
    """
    if _is_open(answer):
        return _open(exercise)
    if not isinstance(answer, Tensor):
        try:
            answer = torch.as_tensor(answer)
        except Exception:
            shape, kind = tuple(expected.shape), type(answer).__name__
            return _wrong(exercise, _t(f"{what} should be a tensor of shape {shape}, not a {kind}.",
                                       f"{what}应当是形状为 {shape} 的张量，而不是 {kind}。"), "not_a_tensor")
    if _close(answer, expected):
        return _right(exercise, note)
    for mistake, (their_result, message) in mistakes.items():
        if their_result is not None and _close(answer, their_result) and not _close(their_result, expected):
            return _wrong(exercise, message, mistake)
    if answer.shape != expected.shape:
        yours, shape = tuple(answer.shape), tuple(expected.shape)
        hint = _t(" (one dimension too many: index with an int, not a list or a slice)",
                  "（多了一个维度：请用一个 int 做索引，而不是列表或切片）") if answer.squeeze().shape == expected.shape else ""
        return _wrong(exercise, _t(f"wrong shape: {what} is {yours}, expected {shape}{hint}.",
                                   f"形状不对：{what}是 {yours}，应为 {shape}{hint}。"), "wrong_shape")
    if not torch.isfinite(answer.float()).all() and torch.isfinite(expected.float()).all():
        return _wrong(exercise, _t(f"{what} holds inf or NaN, the expected result does not. ",
                                   f"{what}中含有 inf 或 NaN，而预期结果没有。") + _where(answer, expected), "not_finite")
    return _wrong(exercise, _t("wrong values: ", "数值不对：") + _where(answer, expected), "wrong_values")


# --- 2. The tokenizer ---------------------------------------------------------------------------------------------

def check_prompt_ids(answer, tokenizer, text: str) -> Verdict:
    """Try it 2: the ids of `text` as a Llama 3 prompt (BOS first), from the notebook's `llama3_tokenizer`."""
    if _is_open(answer):
        return _open("2")
    bos = tokenizer.encode_single_token("<|begin_of_text|>")
    eos = tokenizer.encode_single_token("<|end_of_text|>")
    expected = [bos] + tokenizer.encode(text)
    try:
        ids = [int(i) for i in answer]
    except (TypeError, ValueError):
        given = f"{answer!r:.80}"
        return _wrong("2", _t(f"expected a list of ints (token ids), got {given}.",
                              f"这里应当是一个由 int 组成的列表，即各个 token id；你给的是 {given}。"), "not_ids")
    if ids == expected:
        pieces = [tokenizer.decode([i]) for i in ids]
        return _right("2", _t(f"{len(ids)} tokens: {pieces}", f"共 {len(ids)} 个 token：{pieces}。"))
    if ids == expected[1:]:
        return _wrong("2", _t(f"BOS ({bos}, <|begin_of_text|>) is missing at the start: a Llama 3 prompt begins with "
                              "it.",
                              f"开头缺少 BOS ({bos}, <|begin_of_text|>)：Llama 3 的提示词总是以它开头。"), "missing_bos")
    if ids == expected + [eos]:
        return _wrong("2", _t(f"the last id, {eos}, is EOS (<|end_of_text|>): a prompt does not end with it, "
                              "the model is to continue it.",
                              f"最后一个 id {eos} 是 EOS (<|end_of_text|>)：提示词不以它结尾，模型要接着提示词往下写。"),
                      "extra_eos")
    if len(ids) != len(expected):
        return _wrong("2", _t(f"{len(ids)} ids, expected {len(expected)}: one token is usually a word piece with its "
                              "leading space, not one character.",
                              f"你给了 {len(ids)} 个 id，应为 {len(expected)} 个：一个 token 通常是一个词片段（连同它前面的"
                              "空格），而不是一个字符。"), "wrong_length")
    first = next(i for i, (a, b) in enumerate(zip(ids, expected)) if a != b)
    piece = f"{tokenizer.decode([expected[first]])!r}"
    return _wrong("2", _t(f"id {first} is {ids[first]}, expected {expected[first]} ({piece}).",
                          f"第 {first} 个 id 是 {ids[first]}，应为 {expected[first]} ({piece})。"), "wrong_values")


# --- 4. Embeddings ------------------------------------------------------------------------------------------------

def check_embedding(answer, h: Tensor, prompt_tokens: Sequence[int], embeddings: Tensor) -> Verdict:
    """Try it 4: the embedding of the prompt's last token, compared with the notebook's h[-1]."""
    position, token = len(prompt_tokens) - 1, prompt_tokens[-1]
    mistakes = {"position_not_id": (embeddings[position].to(h.dtype),
                                    _t(f"that is row {position} of the matrix: the token's *position*. "
                                       f"The row to pick is the token's id, {token}.",
                                       f"这是矩阵的第 {position} 行，也就是这个 token 的位置。要取的那一行由 token 的 "
                                       f"id 决定：第 {token} 行。"))}
    return _compare("4", answer, h[-1], _t("your embedding", "你的嵌入"), mistakes)


# --- 5. RMSNorm ---------------------------------------------------------------------------------------------------

def check_rms_norm(fn, rms_norm: Callable, x: Tensor, weight: Tensor, eps: float) -> Verdict:
    """Try it 5: the reader's RMSNorm against the notebook's, on x, on a tiny x (eps counts), in float16."""
    out, verdict = _call("5", fn, x, weight, eps)
    if verdict:
        return verdict
    x32 = x.float()
    no_weight = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).type_as(x)
    mistakes = {
        "forgot_eps": ((x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True))).type_as(x) * weight,
                       _t("eps is missing: add it under the root, sqrt(mean(x²) + eps), so that a tiny x cannot "
                          "blow up.",
                          "缺少 eps：要把它加在根号里面，sqrt(mean(x²) + eps)，这样即使 x 很小，结果也不会变得极大。")),
        "forgot_weight": (no_weight, _t("the weight is missing: after the division, multiply by the learned weight g.",
                                        "缺少权重：除完之后，还要乘以学到的权重 g。")),
        "no_sqrt": ((x32 / (x32.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight,
                    _t("divide by the *root* of the mean square: torch.rsqrt (or sqrt), not the mean square itself.",
                       "要除以均方的平方根：用 torch.rsqrt（或 sqrt），而不是直接除以均方。")),
        "layer_norm": (((x32 - x32.mean(-1, keepdim=True)) * torch.rsqrt(x32.var(-1, keepdim=True, unbiased=False) + eps))
                       .type_as(x) * weight,
                       _t("that is LayerNorm: RMSNorm does not subtract the mean, it divides by the root mean square.",
                          "这是 LayerNorm：RMSNorm 不减去均值，只除以均方根。")),
        "wrong_dim": ((x32 * torch.rsqrt(x32.pow(2).mean(0, keepdim=True) + eps)).type_as(x) * weight,
                      _t("the mean runs over the wrong dimension: each token (row) is normalized over its D numbers, "
                         "mean(-1, keepdim=True).",
                         "均值取错了维度：每个 token（一行）要在它自己的 D 个数上归一化，即 mean(-1, keepdim=True)。")),
    }
    verdict = _compare("5", out, rms_norm(x, weight, eps), _t("your result", "你的结果"), mistakes)
    if verdict.status != CORRECT:
        return verdict
    tiny = x * 1e-4  # a mean square far below eps: there, eps decides the result
    out, verdict = _call("5", fn, tiny, weight, eps)
    if verdict or not _close(out, rms_norm(tiny, weight, eps)):
        return verdict or _wrong("5", _t("right on h, wrong on a tiny input (h / 10⁴): is eps added under the root, "
                                         "sqrt(mean(x²) + eps)?",
                                         "在 h 上正确，在很小的输入 (h / 10⁴) 上却出错：eps 是否加在了根号里面，即 "
                                         "sqrt(mean(x²) + eps)？"), "forgot_eps")
    # Squares of numbers of size ~400 overflow float16 (largest 65504): only a float32 computation survives.
    x16 = (x32 / x32.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-30) * 400).half()
    weight16 = weight.half()
    out, verdict = _call("5", fn, x16, weight16, eps)
    if verdict:
        return verdict
    if isinstance(out, Tensor) and out.dtype != torch.float16:
        return _wrong("5", _t(f"on a float16 input your function returns {out.dtype}: compute in float32, then cast "
                              "back with .type_as(x), so that the model keeps its dtype.",
                              f"输入是 float16 时，你的函数返回的是 {out.dtype}：先用 float32 计算，再用 .type_as(x) "
                              "转换回原来的 dtype，这样模型才能保持它的 dtype。"), "forgot_cast_back")
    if not _close(out, rms_norm(x16, weight16, eps)):
        return _wrong("5", _t("right in float32, wrong in float16: x² overflows float16 (its largest number is 65504). "
                              "Compute in float32 (x.float()) and cast back (.type_as(x)), as Meta does.",
                              "在 float32 下正确，在 float16 下却出错：x² 在 float16 中会溢出（float16 能表示的最大数是 "
                              "65504）。请像 Meta 那样先转成 float32 计算 (x.float())，再转换回原来的 dtype (.type_as(x))。"),
                      "forgot_upcast")
    return _right("5", _t("It also holds on a tiny input, where eps counts, and in float16.",
                          "在 eps 起作用的很小输入上，以及在 float16 下，它也同样正确。"))


# --- 6. RoPE, the mask and softmax --------------------------------------------------------------------------------

def check_rope_position(answer, q_row: Tensor, position: int, apply_rope: Callable, rope_frequencies: Callable,
                        cfg) -> Verdict:
    """Try it 6a: q_row rotated as if it stood at `position`, against the notebook's apply_rope."""
    dh = q_row.shape[-1]
    freqs = rope_frequencies(dh, position + 2, cfg.rope_theta, cfg.use_scaled_rope, cfg.rope_scaling_factor)
    freqs = freqs.to(q_row.device)
    at = lambda rotations: apply_rope(q_row[None], rotations[None])[0]  # noqa: E731
    half = q_row.float()
    angles = torch.angle(freqs[position])
    cos, sin = torch.cat([angles.cos()] * 2), torch.cat([angles.sin()] * 2)
    rotate_half = torch.cat([-half[dh // 2:], half[:dh // 2]])
    p = position
    mistakes = {
        "off_by_one": (at(freqs[p - 1]), _t(f"that is position {p - 1}: positions count from 0, "
                                            f"so position {p} turns by {p}·θ_i.",
                                            f"这是位置 {p - 1}：位置从 0 开始计数，所以位置 {p} 要旋转 {p}·θ_i。")),
        "off_by_one_after": (at(freqs[p + 1]), _t(f"that is position {p + 1}: position {p} turns by {p}·θ_i.",
                                                  f"这是位置 {p + 1}：位置 {p} 只旋转 {p}·θ_i。")),
        "wrong_direction": (at(freqs[p].conj()), _t("your rotation turns the wrong way (by -angle): multiply by "
                                                    "e^{+i·angle}, not its conjugate.",
                                                    "你的旋转方向反了（转了 -angle）：应乘以 e^{+i·angle}，而不是它的"
                                                    "共轭。")),
        "not_rotated": (q_row, _t(f"that is q[0] unrotated (position 0 turns by 0): rotate it to position {p}.",
                                  f"这是没有旋转的 q[0]（位置 0 的旋转角为 0）：请把它旋转到位置 {p}。")),
        "half_layout": ((half * cos + rotate_half * sin).type_as(q_row),
                        _t("that is Hugging Face's layout (pair i with i + Dh/2, rotate_half). Meta's checkpoint pairs "
                           "neighbours: 2i with 2i+1.",
                           "这是 Hugging Face 的排列方式（第 i 个数与第 i + Dh/2 个数配对，即 rotate_half）。Meta 的 "
                           "checkpoint 把相邻的数配对：第 2i 个与第 2i+1 个。")),
    }
    if cfg.use_scaled_rope:
        plain = rope_frequencies(dh, p + 2, cfg.rope_theta).to(q_row.device)
        mistakes["forgot_scaling"] = (at(plain[p]), _t("this model scales its RoPE frequencies (use_scaled_rope): pass "
                                                       "cfg.use_scaled_rope and cfg.rope_scaling_factor to "
                                                       "rope_frequencies.",
                                                       "这个模型会缩放它的 RoPE 频率 (use_scaled_rope)：请把 "
                                                       "cfg.use_scaled_rope 和 cfg.rope_scaling_factor 传给 "
                                                       "rope_frequencies。"))
    return _compare("6a", answer, at(freqs[p]), _t("your rotated query", "你旋转后的查询"), mistakes,
                    _t("Its length is q[0]'s: a rotation only turns it.", "它的长度与 q[0] 相同：旋转只改变方向。"))


def check_attention_weights(fn, scores: Tensor, attn: Tensor) -> Verdict:
    """Try it 6b: causal mask + softmax from raw scores, against the notebook's attn."""
    out, verdict = _call("6b", fn, scores)
    if verdict:
        return verdict
    s = scores.float()
    future = torch.ones_like(s, dtype=torch.bool).triu(1)
    mistakes = {
        "no_mask": (torch.softmax(s, -1).type_as(scores),
                    _t("no causal mask: every token still sees the tokens after it. Add -inf above the diagonal "
                       "before softmax.",
                       "没有因果掩码：每个 token 仍然能看到它后面的 token。请在 softmax 之前把对角线以上设为 -inf。")),
        "zero_mask": (torch.softmax(s.masked_fill(future, 0.0), -1).type_as(scores),
                      _t("the future is masked with 0, but e⁰ = 1: the later tokens still get weight. Mask with -inf "
                         "(e^-inf = 0).",
                         "未来的位置用 0 做了掩码，但 e⁰ = 1：后面的 token 仍然会分到权重。请用 -inf 做掩码"
                         " (e^-inf = 0)。")),
        "mask_transposed": (torch.softmax(s.masked_fill(future.mT, float("-inf")), -1).type_as(scores),
                            _t("the mask hides the past and shows the future: -inf goes *above* the diagonal, "
                               "triu(diagonal=1).",
                               "这个掩码遮住了过去、露出了未来：-inf 应放在对角线以上，即 triu(diagonal=1)。")),
        "wrong_dim": (torch.softmax(s.masked_fill(future, float("-inf")), 0).type_as(scores),
                      _t("softmax over the wrong dimension: each row (one query) must sum to 1, dim=-1.",
                         "softmax 的维度不对：每一行（一个查询）之和必须为 1，即 dim=-1。")),
        "no_softmax": ((s + s.new_full(s.shape, float("-inf")).triu(1)).type_as(scores),
                       _t("those are the masked scores: softmax them into weights.",
                          "这些是加了掩码的注意力分数：请用 softmax 把它们变成权重。")),
    }
    if isinstance(out, Tensor) and out.shape == attn.shape and torch.isnan(out.float()[0]).all():
        return _wrong("6b", _t("row 0 is NaN: your mask also hides the diagonal, so the first token sees nothing. "
                               "A token sees itself: triu(diagonal=1).",
                               "第 0 行是 NaN：你的掩码把对角线也遮住了，于是第一个 token 什么也看不到。每个 token 都"
                               "应当能看到它自己：triu(diagonal=1)。"), "mask_diagonal")
    if isinstance(out, Tensor) and out.dtype != scores.dtype:
        return _wrong("6b", _t(f"your weights are {out.dtype}, the scores {scores.dtype}: softmax in float32, then "
                               "cast back with .type_as(scores).",
                               f"你的权重是 {out.dtype}，而注意力分数是 {scores.dtype}：在 float32 中做 softmax，再用 "
                               ".type_as(scores) 转换回原来的 dtype。"), "forgot_cast_back")
    return _compare("6b", out, attn, _t("your weights", "你的权重"), mistakes)


# --- 7. Grouped-query attention -----------------------------------------------------------------------------------

def check_kv_heads(answer, attention_scores: Callable, n_heads: int, n_kv_heads: int) -> Verdict:
    """Try it 7: the key/value head each query head reads, read off the notebook's own attention_scores."""
    if _is_open(answer):
        return _open("7")
    # One query of 1s per head, and key/value head g holding the number g + 1: the score tells which one a head met.
    q = torch.ones(1, n_heads, 1)
    k = torch.arange(1, n_kv_heads + 1, dtype=torch.float32).view(1, n_kv_heads, 1)
    expected = [int(round(float(s))) - 1 for s in attention_scores(q, k)[:, 0, 0]]
    try:
        given = [int(g) for g in answer]
    except (TypeError, ValueError):
        shown = f"{answer!r:.80}"
        return _wrong("7", _t(f"expected a list of {n_heads} ints, got {shown}.",
                              f"这里应当是由 {n_heads} 个 int 组成的列表，你给的是 {shown}。"), "not_ids")
    if given == expected:
        n_rep = n_heads // n_kv_heads
        return _right("7", _t(f"{n_rep} neighbouring query heads share each key/value head.",
                              f"每 {n_rep} 个相邻的查询头共用一个键/值头。"))
    if len(given) != n_heads:
        return _wrong("7", _t(f"{len(given)} entries, expected one per query head: {n_heads}.",
                              f"你给了 {len(given)} 项，应当每个查询头一项，共 {n_heads} 项。"), "wrong_length")
    if given == [h % n_kv_heads for h in range(n_heads)]:
        return _wrong("7", _t("that is i % H_KV (torch's repeat, heads dealt out in turn). Llama repeats each "
                              "key/value head N_REP times in a row (repeat_interleave): query head i reads i // N_REP.",
                              "这是 i % H_KV（torch 的 repeat，把各个头轮流分下去）。Llama 把每个键/值头连续重复 N_REP "
                              "次 (repeat_interleave)：查询头 i 读取的是键/值头 i // N_REP。"), "modulo")
    first = next(h for h in range(n_heads) if given[h] != expected[h])
    return _wrong("7", _t(f"query head {first} reads key/value head {expected[first]}, not {given[first]}.",
                          f"查询头 {first} 读取的是键/值头 {expected[first]}，而不是 {given[first]}。"), "wrong_values")


# --- 9. SwiGLU ----------------------------------------------------------------------------------------------------

def check_feed_forward(fn, feed_forward: Callable, x: Tensor, w: Mapping[str, Tensor]) -> Verdict:
    """Try it 9: the reader's SwiGLU against the notebook's feed_forward."""
    out, verdict = _call("9", fn, x, dict(w))
    if verdict:
        return verdict
    lin = lambda a, name: a @ w[name].to(a.dtype).T  # noqa: E731
    f = torch.nn.functional
    gate, up = lin(x, "w1"), lin(x, "w3")
    not_silu = lambda name: _t(f"that is {name}: Llama's gate is SiLU, x·σ(x).",  # noqa: E731
                               f"这是 {name}：Llama 的门控函数是 SiLU，即 x·σ(x)。")
    mistakes = {
        "gate_swapped": (lin(f.silu(up) * gate, "w2"), _t("SiLU is applied to the wrong branch: it gates x·W1ᵀ; "
                                                          "x·W3ᵀ passes through unchanged.",
                                                          "SiLU 用错了分支：它应作用在 x·W1ᵀ 上做门控；x·W3ᵀ 原样"
                                                          "通过。")),
        "relu": (lin(f.relu(gate) * up, "w2"), not_silu("ReLU")),
        "gelu": (lin(f.gelu(gate) * up, "w2"), not_silu("GELU")),
        "sigmoid": (lin(torch.sigmoid(gate) * up, "w2"), _t("that is σ(x) alone: SiLU is x·σ(x).",
                                                            "这只是 σ(x)：SiLU 是 x·σ(x)。")),
        "no_gate": (lin(f.silu(gate), "w2"), _t("the product with x·W3ᵀ is missing: SwiGLU multiplies SiLU(x·W1ᵀ) by "
                                                "x·W3ᵀ before W2.",
                                                "缺少与 x·W3ᵀ 的乘积：SwiGLU 在乘 W2 之前，先把 SiLU(x·W1ᵀ) 与 x·W3ᵀ "
                                                "相乘。")),
    }
    return _compare("9", out, feed_forward(x, w), _t("your result", "你的结果"), mistakes)


# --- 11. The next token -------------------------------------------------------------------------------------------

def check_earlier_prediction(answer, output_logits: Callable, model, hidden_states: Sequence[Tensor],
                             prompt_tokens: Sequence[int], tokenizer) -> Verdict:
    """Try it 11: the token predicted at the second-to-last position, from the notebook's output_logits."""
    if len(prompt_tokens) < 2:
        return Verdict("11", OPEN, _t("needs a prompt of at least 2 tokens; this one has 1.",
                                      "需要至少 2 个 token 的提示词；这个提示词只有 1 个 token。"))
    if _is_open(answer):
        return _open("11")
    expected = int(output_logits(model, hidden_states[-1][-2]).argmax())
    try:
        given = int(answer)
    except (TypeError, ValueError):
        shown = f"{answer!r:.80}"
        return _wrong("11", _t(f"expected a token id (an int), got {shown}.",
                               f"这里应当是一个 token id（一个 int），你给的是 {shown}。"), "not_an_id")
    said = lambda t: f"{t} = {tokenizer.decode([t])!r}"  # noqa: E731
    if given == expected:
        real = prompt_tokens[-1]
        guessed = _t("which *is* the prompt's last token", "这正是提示词的最后一个 token") if given == real else \
            _t(f"where the prompt has {said(real)}", f"而提示词在这里是 {said(real)}")
        return _right("11", _t(f"After the second-to-last token the model expected {said(given)}, {guessed}.",
                               f"在倒数第二个 token 之后，模型预期的是 {said(given)}，{guessed}。"))
    if given == int(output_logits(model, hidden_states[-1][-1]).argmax()):
        return _wrong("11", _t("that is the prediction at the last position (the next token): take the hidden state "
                               "of the second-to-last position, hidden_states[-1][-2].",
                               "这是最后一个位置上的预测（即下一个 token）：请取倒数第二个位置的隐藏状态，即 "
                               "hidden_states[-1][-2]。"), "last_position")
    if given == int(output_logits(model, hidden_states[-2][-2]).argmax()):
        return _wrong("11", _t("that comes from hidden_states[-2], the input of the last layer: the prediction uses "
                               "the output of all L layers, hidden_states[-1].",
                               "这来自 hidden_states[-2]，即最后一层的输入：预测用的是经过全部 L 层之后的输出，即 "
                               "hidden_states[-1]。"), "wrong_layer")
    return _wrong("11", _t(f"the model's most likely token there is {said(expected)}, not {said(given)}.",
                           f"模型在这个位置上最可能的 token 是 {said(expected)}，而不是 {said(given)}。"), "wrong_values")


# --- 12. Another head of another layer ----------------------------------------------------------------------------

def check_head_scores(answer, layer: int, head: int, notebook: Mapping) -> Verdict:
    """Try it 12: scores before the mask of `head` in `layer`, from the notebook's own functions (its globals())."""
    if _is_open(answer):
        return _open("12")
    nb = notebook
    cfg, rms_norm, apply_rope, freqs_cis = nb["cfg"], nb["rms_norm"], nb["apply_rope"], nb["freqs_cis"]

    def scores_of(layer_index: int, head_index: int, rope: bool = True, norm: bool = True, kv=None):
        w = nb["layer_weights"](nb["model"], layer_index)
        x = nb["hidden_states"][layer_index]
        x = rms_norm(x, w["attention_norm"], cfg.norm_eps) if norm else x
        q, k, _ = nb["project_qkv"](x, w, cfg.n_heads, cfg.n_kv_heads)
        if rope:
            q, k = apply_rope(q, freqs_cis), apply_rope(k, freqs_cis)
        kv_index = head_index // (cfg.n_heads // cfg.n_kv_heads) if kv is None else kv
        return q[:, head_index], k[:, kv_index]

    q, k = scores_of(layer, head)
    expected = q @ k.T / math.sqrt(q.shape[-1])
    mask = torch.full_like(expected, float("-inf")).triu(1)
    mistakes = {
        "forgot_scale": (q @ k.T, _t("the division by sqrt(Dh) is missing.", "缺少除以 sqrt(Dh) 这一步。")),
        "transposed": ((q @ k.T / math.sqrt(q.shape[-1])).T, _t("transposed: rows are queries, q @ k.T, not k @ q.T.",
                                                                "转置了：行对应查询，应为 q @ k.T，而不是 k @ q.T。")),
        "masked": (expected + mask, _t("these are the scores after the mask: the exercise asks for them before it.",
                                       "这些是加掩码之后的注意力分数：本题要的是加掩码之前的。")),
    }
    q0, k0 = scores_of(layer, head, rope=False)
    mistakes["forgot_rope"] = (q0 @ k0.T / math.sqrt(q.shape[-1]),
                               _t("RoPE is missing: rotate the queries and keys with apply_rope before their product.",
                                  "缺少 RoPE：相乘之前，先用 apply_rope 旋转查询和键。"))
    qn, kn = scores_of(layer, head, norm=False)
    mistakes["forgot_norm"] = (qn @ kn.T / math.sqrt(q.shape[-1]),
                               _t("the layer's RMSNorm (attention_norm) is missing: project the normalized hidden "
                                  "state.",
                                  "缺少这一层的 RMSNorm (attention_norm)：请对归一化之后的隐藏状态做投影。"))
    qm, km = scores_of(layer, head, kv=0)
    mistakes["wrong_kv_head"] = (qm @ km.T / math.sqrt(q.shape[-1]),
                                 _t(f"those keys are key/value head 0's: query head {head} reads key/value head "
                                    f"{head} // N_REP.",
                                    f"这些键来自键/值头 0：查询头 {head} 读取的是键/值头 {head} // N_REP。"))
    heatmap_layer = nb.get("HEATMAP_LAYER", 0)
    for other, name in [(0, _t("layer 0", "第 0 层")),
                        (heatmap_layer, _t("HEATMAP_LAYER", f"第 {heatmap_layer} 层 (HEATMAP_LAYER) "))]:
        if other != layer:
            qo, ko = scores_of(other, head)
            mistakes[f"wrong_layer_{other}"] = (qo @ ko.T / math.sqrt(q.shape[-1]),
                                                _t(f"those are the scores of {name}: use hidden_states[{layer}] and "
                                                   f"layer_weights(model, {layer}).",
                                                   f"这些是{name}的注意力分数：请换成第 {layer} 层，使用 "
                                                   f"hidden_states[{layer}] 和 layer_weights(model, {layer})。"))
    if head != 0:
        qh, kh = scores_of(layer, 0)
        mistakes["wrong_head"] = (qh @ kh.T / math.sqrt(q.shape[-1]),
                                  _t(f"those are head 0's scores: take head {head}.",
                                     f"这些是注意力头 0 的注意力分数：请取注意力头 {head}。"))
    return _compare("12", answer, expected, _t("your scores", "你的注意力分数"), mistakes)


# --- 15. The KV cache ---------------------------------------------------------------------------------------------

def check_kv_cache_bytes(answer, params: Mapping[str, int], n_tokens: int, bytes_per_value: int,
                         kv_cache_bytes: Callable) -> Verdict:
    """Try it 15: the KV cache of a model given by its params.json sizes, from the notebook's kv_cache_bytes."""
    if _is_open(answer):
        return _open("15")
    layers, heads, kv_heads = params["n_layers"], params["n_heads"], params.get("n_kv_heads", params["n_heads"])
    head_dim = params["dim"] // heads
    expected = kv_cache_bytes(layers, n_tokens, kv_heads, head_dim, bytes_per_value)
    try:
        given = float(answer)
    except (TypeError, ValueError):
        shown = f"{answer!r:.80}"
        return _wrong("15", _t(f"expected a number of bytes, got {shown}.", f"这里应当是一个字节数，你给的是 {shown}。"),
                      "not_a_number")
    gib = lambda b: f"{b / 2**30:,.2f} GiB"  # noqa: E731
    if given == expected:
        return _right("15", _t(f"{expected:,} bytes = {gib(expected)}, for one sequence of {n_tokens:,} tokens.",
                               f"{expected:,} 字节 = {gib(expected)}，这是一条 {n_tokens:,} 个 token 的序列所需的量。"))
    known = {
        "all_heads": (kv_cache_bytes(layers, n_tokens, heads, head_dim, bytes_per_value),
                      _t(f"{heads // kv_heads}× too much: keys and values have only n_kv_heads = {kv_heads} heads "
                         f"(GQA), not {heads}.",
                         f"算多了，是正确值的 {heads // kv_heads} 倍：键和值只有 n_kv_heads = {kv_heads} 个头（分组"
                         f"查询注意力，GQA），而不是 {heads} 个。")),
        "keys_only": (expected / 2, _t("half of it: the cache holds keys *and* values.",
                                       "只算了一半：KV 缓存里既有键，也有值。")),
        "float32": (expected * 2, _t(f"that is float32 (4 bytes); bf16 takes {bytes_per_value}.",
                                     f"这是 float32（每个数 4 字节）；bf16 每个数只占 {bytes_per_value} 字节。")),
        "one_layer": (expected / layers, _t(f"that is one layer: every one of the {layers} layers keeps its own.",
                                            f"这只是一层：{layers} 层中的每一层都有自己的 KV 缓存。")),
        "thousands": (kv_cache_bytes(layers, n_tokens // 1024 * 1000, kv_heads, head_dim, bytes_per_value),
                      _t(f"8K tokens here is {n_tokens:,} (8 × 1024), not 8,000.",
                         f"这里的 8K 个 token 是 {n_tokens:,} 个 (8 × 1024)，而不是 8,000 个。")),
    }
    for mistake, (value, message) in known.items():
        if math.isclose(given, value, rel_tol=1e-9):
            return _wrong("15", message, mistake)
    for unit, size in [("GiB", 2**30), ("MiB", 2**20), ("GB", 1e9), ("MB", 1e6)]:
        if math.isclose(given * size, expected, rel_tol=1e-3):
            return _wrong("15", _t(f"that is the right size in {unit}: give it in bytes, {expected:,}.",
                                   f"这是以 {unit} 为单位的正确大小：请以字节为单位作答，即 {expected:,}。"), "units")
    return _wrong("15", _t(f"{given:,.0f} bytes ({gib(given)}); expected {gib(expected)}. Count: 2 (keys and values) × "
                           "layers × tokens × n_kv_heads × head_dim × bytes per number.",
                           f"{given:,.0f} 字节 ({gib(given)})；应为 {gib(expected)}。计算方法：2（键和值）× 层数 × "
                           "token 数 × n_kv_heads × head_dim × 每个数的字节数。"), "wrong_values")


# --- 16. Top-p ----------------------------------------------------------------------------------------------------

def check_top_p(answer, probs: Tensor, p: float, sample_top_p: Callable) -> Verdict:
    """Try it 16: the distribution sample_top_p draws from, each token at its own place."""
    order = probs.argsort(descending=True)
    sorted_probs = probs[order]
    before = torch.cumsum(sorted_probs, 0) - sorted_probs
    kept = torch.where(before > p, 0.0, sorted_probs)  # Meta: drop a token once the ones before it hold p
    expected = torch.zeros_like(probs).scatter(0, order, kept / kept.sum())
    # The notebook's sample_top_p must never draw a token outside that set (a seeded look at 200 draws).
    draws = sample_top_p(probs.expand(200, -1).clone(), p, torch.Generator().manual_seed(0))
    if not bool((expected[draws] > 0).all()):
        return _wrong("16", _t("the notebook's sample_top_p drew a token outside the top-p set: was it changed? "
                               "Run its cell (section 16) again.",
                               "notebook 里的 sample_top_p 抽到了 top-p 集合之外的 token：它被改过吗？请重新运行它所在"
                               "的单元格（第 16 节）。"), "sample_top_p_changed")
    early = torch.where(torch.cumsum(sorted_probs, 0) > p, 0.0, sorted_probs)
    mistakes = {
        "not_renormalized": (torch.zeros_like(probs).scatter(0, order, kept),
                             _t("not renormalized: the kept probabilities must sum to 1 again.",
                                "没有重新归一化：保留下来的概率之和必须重新等于 1。")),
        "sorted_order": (kept / kept.sum(), _t("that is the sorted order: put each probability back at its token's "
                                               "place.",
                                               "这是排序后的顺序：请把每个概率放回它所属 token 原来的位置。")),
    }
    if early.sum() > 0:
        mistakes["stopped_early"] = (torch.zeros_like(probs).scatter(0, order, early / early.sum()),
                                     _t("you stopped before the token that crosses p: Meta keeps a token while the "
                                        "ones *before* it hold at most p, so the kept set holds more than p.",
                                        "你在越过 p 的那个 token 之前就停下了：Meta 的做法是，只要排在一个 token 前面"
                                        "的概率之和不超过 p，就保留这个 token，所以保留下来的概率之和会超过 p。"))
    return _compare("16", answer, expected, _t("your probabilities", "你的概率"), mistakes)


# --- 18. The batch ------------------------------------------------------------------------------------------------

def check_forward_calls(answer, lengths: Sequence[int], max_new_tokens: int, max_seq_len: int) -> Verdict:
    """Try it 18: how many times generate_batch calls forward when no row stops (its loop's range)."""
    if _is_open(answer):
        return _open("18")
    total_len = min(max(lengths) + max_new_tokens, max_seq_len)
    shortest = min(lengths)
    expected = total_len - shortest
    try:
        given = int(answer)
    except (TypeError, ValueError):
        shown = f"{answer!r:.80}"
        return _wrong("18", _t(f"expected a number of calls (an int), got {shown}.",
                               f"这里应当是调用次数（一个 int），你给的是 {shown}。"), "not_a_number")
    if given == expected:
        return _right("18", _t(f"From position {shortest} (the shortest prompt) to {total_len}: the longer prompts are "
                               "fed their own tokens on the way.",
                               f"从位置 {shortest}（最短的提示词）到 {total_len}：较长的提示词在这一路上读入的是它们"
                               "自己的 token。"))
    if given in (max_new_tokens, total_len - max(lengths)):
        return _wrong("18", _t("that counts from the longest prompt: the batch starts decoding at the *shortest* "
                               "prompt's length, min(lengths).",
                               "这是从最长的提示词开始数的：这个批从最短的提示词的长度 min(lengths) 处就开始解码。"),
                      "from_longest")
    if given == total_len:
        return _wrong("18", _t("that counts from position 0: the first call is a prefill of min(lengths) tokens at "
                               "once.",
                               "这是从位置 0 开始数的：第一次调用是预填充，一次读入 min(lengths) 个 token。"), "from_zero")
    if given == len(lengths) * expected:
        return _wrong("18", _t("one call serves all rows at once: count the steps, not steps × rows.",
                               "一次调用同时处理所有行：请数步数，而不是步数 × 行数。"), "per_row")
    return _wrong("18", _t(f"{given} calls; count the positions from min(lengths) = {shortest} up to total_len = "
                           "min(max(lengths) + MAX_NEW_TOKENS, max_seq_len).",
                           f"你给的是 {given} 次；请数一数从 min(lengths) = {shortest} 到 total_len = "
                           "min(max(lengths) + MAX_NEW_TOKENS, max_seq_len) 共有多少个位置。"), "wrong_values")
