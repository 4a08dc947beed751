"""The checks of the notebook's "Try it" exercises.

Usage, in the notebook (each exercise: a task, a cell for the reader's answer, then one check call):
    import exercises
    exercises.check_rms_norm(my_rms_norm, rms_norm, h, layer["attention_norm"], cfg.norm_eps)

Every check compares the reader's answer with the notebook's own result, and returns a `Verdict` that
Jupyter shows as one line: open (the answer is still `...`, or the function returns None), correct, or
what is wrong (the shape, the values and where, or a known mistake by name: a forgotten float32 step, a
mask of 0 instead of -inf, ...). A check never raises, so the notebook runs top to bottom with every
exercise open. The solutions, for teachers, are in scripts/exercise_solutions.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

OPEN, CORRECT, WRONG = "open", "correct", "wrong"


@dataclass(frozen=True)
class Verdict:
    exercise: str
    status: str  # OPEN, CORRECT or WRONG
    message: str
    mistake: str | None = None  # the name of a known mistake (e.g. "forgot_upcast"); the tests read it

    def __repr__(self) -> str:  # what the notebook shows
        mark = {OPEN: "○", CORRECT: "✓", WRONG: "✗"}[self.status]
        return f"{mark} Try it {self.exercise}: {self.message}"


def _open(exercise: str) -> Verdict:
    return Verdict(exercise, OPEN, "open. Write your answer in the cell above (replace the ...), then run both cells.")


def _right(exercise: str, note: str = "") -> Verdict:
    return Verdict(exercise, CORRECT, "correct." + (f" {note[0].upper()}{note[1:]}" if note else ""))


def _wrong(exercise: str, message: str, mistake: str) -> Verdict:
    return Verdict(exercise, WRONG, message, mistake)


def _is_open(answer) -> bool:
    return answer is ... or answer is None


def _call(exercise: str, fn: Callable, *args) -> tuple[object, Verdict | None]:
    """fn(*args), or the verdict that says it is open, not callable, or raised."""
    if _is_open(fn):
        return None, _open(exercise)
    if not callable(fn):
        return None, _wrong(exercise, f"expected a function, got {type(fn).__name__}.", "not_a_function")
    try:
        result = fn(*[a.clone() if isinstance(a, Tensor) else a for a in args])  # the reader cannot spoil our inputs
    except Exception as error:  # the reader's code: say what it raised, never stop the notebook
        return None, _wrong(exercise, f"your function raised {type(error).__name__}: {error}", "raised")
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
        return "the values agree, but not the places of -inf."
    index = tuple(int(i) for i in bad.nonzero()[0])
    return (f"{int(bad.sum())} of {bad.numel()} values differ; the first at {list(index)}: "
            f"yours {a[index].item():.6g}, expected {e[index].item():.6g}.")


def _compare(exercise: str, answer, expected: Tensor, what: str, mistakes: Mapping[str, tuple[Tensor, str]] = {},
             note: str = "") -> Verdict:
    """The common check of a tensor answer: open, type, known mistakes, shape, then values."""
    if _is_open(answer):
        return _open(exercise)
    if not isinstance(answer, Tensor):
        try:
            answer = torch.as_tensor(answer)
        except Exception:
            return _wrong(exercise, f"{what} should be a tensor of shape {tuple(expected.shape)}, "
                                    f"not a {type(answer).__name__}.", "not_a_tensor")
    if _close(answer, expected):
        return _right(exercise, note)
    for mistake, (their_result, message) in mistakes.items():
        if their_result is not None and _close(answer, their_result) and not _close(their_result, expected):
            return _wrong(exercise, message, mistake)
    if answer.shape != expected.shape:
        hint = " (one dimension too many: index with an int, not a list or a slice)" \
            if answer.squeeze().shape == expected.shape else ""
        return _wrong(exercise, f"wrong shape: {what} is {tuple(answer.shape)}, expected {tuple(expected.shape)}{hint}.",
                      "wrong_shape")
    if not torch.isfinite(answer.float()).all() and torch.isfinite(expected.float()).all():
        return _wrong(exercise, f"{what} holds inf or NaN, the expected result does not. " + _where(answer, expected),
                      "not_finite")
    return _wrong(exercise, f"wrong values: {_where(answer, expected)}", "wrong_values")


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
        return _wrong("2", f"expected a list of ints (token ids), got {answer!r:.80}.", "not_ids")
    if ids == expected:
        return _right("2", f"{len(ids)} tokens: {[tokenizer.decode([i]) for i in ids]}")
    if ids == expected[1:]:
        return _wrong("2", f"BOS ({bos}, <|begin_of_text|>) is missing at the start: a Llama 3 prompt begins with it.",
                      "missing_bos")
    if ids == expected + [eos]:
        return _wrong("2", f"the last id, {eos}, is EOS (<|end_of_text|>): a prompt does not end with it, "
                           "the model is to continue it.", "extra_eos")
    if len(ids) != len(expected):
        return _wrong("2", f"{len(ids)} ids, expected {len(expected)}: one token is usually a word piece with its "
                           "leading space, not one character.", "wrong_length")
    first = next(i for i, (a, b) in enumerate(zip(ids, expected)) if a != b)
    return _wrong("2", f"id {first} is {ids[first]}, expected {expected[first]} "
                       f"({tokenizer.decode([expected[first]])!r}).", "wrong_values")


# --- 4. Embeddings ------------------------------------------------------------------------------------------------

def check_embedding(answer, h: Tensor, prompt_tokens: Sequence[int], embeddings: Tensor) -> Verdict:
    """Try it 4: the embedding of the prompt's last token, compared with the notebook's h[-1]."""
    position = len(prompt_tokens) - 1
    mistakes = {"position_not_id": (embeddings[position].to(h.dtype),
                                    f"that is row {position} of the matrix: the token's *position*. "
                                    f"The row to pick is the token's id, {prompt_tokens[-1]}.")}
    return _compare("4", answer, h[-1], "your embedding", mistakes)


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
                       "eps is missing: add it under the root, sqrt(mean(x²) + eps), so that a tiny x cannot blow up."),
        "forgot_weight": (no_weight, "the weight is missing: after the division, multiply by the learned weight g."),
        "no_sqrt": ((x32 / (x32.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight,
                    "divide by the *root* of the mean square: torch.rsqrt (or sqrt), not the mean square itself."),
        "layer_norm": (((x32 - x32.mean(-1, keepdim=True)) * torch.rsqrt(x32.var(-1, keepdim=True, unbiased=False) + eps))
                       .type_as(x) * weight,
                       "that is LayerNorm: RMSNorm does not subtract the mean, it divides by the root mean square."),
        "wrong_dim": ((x32 * torch.rsqrt(x32.pow(2).mean(0, keepdim=True) + eps)).type_as(x) * weight,
                      "the mean runs over the wrong dimension: each token (row) is normalized over its D numbers, "
                      "mean(-1, keepdim=True)."),
    }
    verdict = _compare("5", out, rms_norm(x, weight, eps), "your result", mistakes)
    if verdict.status != CORRECT:
        return verdict
    tiny = x * 1e-4  # a mean square far below eps: there, eps decides the result
    out, verdict = _call("5", fn, tiny, weight, eps)
    if verdict or not _close(out, rms_norm(tiny, weight, eps)):
        return verdict or _wrong("5", "right on h, wrong on a tiny input (h / 10⁴): is eps added under the root, "
                                      "sqrt(mean(x²) + eps)?", "forgot_eps")
    # Squares of numbers of size ~400 overflow float16 (largest 65504): only a float32 computation survives.
    x16 = (x32 / x32.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-30) * 400).half()
    weight16 = weight.half()
    out, verdict = _call("5", fn, x16, weight16, eps)
    if verdict:
        return verdict
    if isinstance(out, Tensor) and out.dtype != torch.float16:
        return _wrong("5", f"on a float16 input your function returns {out.dtype}: compute in float32, then cast "
                           "back with .type_as(x), so that the model keeps its dtype.", "forgot_cast_back")
    if not _close(out, rms_norm(x16, weight16, eps)):
        return _wrong("5", "right in float32, wrong in float16: x² overflows float16 (its largest number is 65504). "
                           "Compute in float32 (x.float()) and cast back (.type_as(x)), as Meta does.", "forgot_upcast")
    return _right("5", "It also holds on a tiny input, where eps counts, and in float16.")


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
    mistakes = {
        "off_by_one": (at(freqs[position - 1]), f"that is position {position - 1}: positions count from 0, "
                                                f"so position {position} turns by {position}·θ_i."),
        "off_by_one_after": (at(freqs[position + 1]), f"that is position {position + 1}: position {position} "
                                                      f"turns by {position}·θ_i."),
        "wrong_direction": (at(freqs[position].conj()), "your rotation turns the wrong way (by -angle): multiply by "
                                                        "e^{+i·angle}, not its conjugate."),
        "not_rotated": (q_row, "that is q[0] unrotated (position 0 turns by 0): rotate it to position "
                               f"{position}."),
        "half_layout": ((half * cos + rotate_half * sin).type_as(q_row),
                        "that is Hugging Face's layout (pair i with i + Dh/2, rotate_half). Meta's checkpoint pairs "
                        "neighbours: 2i with 2i+1."),
    }
    if cfg.use_scaled_rope:
        plain = rope_frequencies(dh, position + 2, cfg.rope_theta).to(q_row.device)
        mistakes["forgot_scaling"] = (at(plain[position]), "this model scales its RoPE frequencies "
                                                           "(use_scaled_rope): pass cfg.use_scaled_rope and "
                                                           "cfg.rope_scaling_factor to rope_frequencies.")
    return _compare("6a", answer, at(freqs[position]), "your rotated query", mistakes,
                    "Its length is q[0]'s: a rotation only turns it.")


def check_attention_weights(fn, scores: Tensor, attn: Tensor) -> Verdict:
    """Try it 6b: causal mask + softmax from raw scores, against the notebook's attn."""
    out, verdict = _call("6b", fn, scores)
    if verdict:
        return verdict
    s = scores.float()
    future = torch.ones_like(s, dtype=torch.bool).triu(1)
    mistakes = {
        "no_mask": (torch.softmax(s, -1).type_as(scores), "no causal mask: every token still sees the tokens after "
                                                          "it. Add -inf above the diagonal before softmax."),
        "zero_mask": (torch.softmax(s.masked_fill(future, 0.0), -1).type_as(scores),
                      "the future is masked with 0, but e⁰ = 1: the later tokens still get weight. Mask with -inf "
                      "(e^-inf = 0)."),
        "mask_transposed": (torch.softmax(s.masked_fill(future.mT, float("-inf")), -1).type_as(scores),
                            "the mask hides the past and shows the future: -inf goes *above* the diagonal, "
                            "triu(diagonal=1)."),
        "wrong_dim": (torch.softmax(s.masked_fill(future, float("-inf")), 0).type_as(scores),
                      "softmax over the wrong dimension: each row (one query) must sum to 1, dim=-1."),
        "no_softmax": ((s + s.new_full(s.shape, float("-inf")).triu(1)).type_as(scores),
                       "those are the masked scores: softmax them into weights."),
    }
    if isinstance(out, Tensor) and out.shape == attn.shape and torch.isnan(out.float()[0]).all():
        return _wrong("6b", "row 0 is NaN: your mask also hides the diagonal, so the first token sees nothing. "
                            "A token sees itself: triu(diagonal=1).", "mask_diagonal")
    if isinstance(out, Tensor) and out.dtype != scores.dtype:
        return _wrong("6b", f"your weights are {out.dtype}, the scores {scores.dtype}: softmax in float32, then cast "
                            "back with .type_as(scores).", "forgot_cast_back")
    return _compare("6b", out, attn, "your weights", mistakes)


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
        return _wrong("7", f"expected a list of {n_heads} ints, got {answer!r:.80}.", "not_ids")
    if given == expected:
        return _right("7", f"{n_heads // n_kv_heads} neighbouring query heads share each key/value head.")
    if len(given) != n_heads:
        return _wrong("7", f"{len(given)} entries, expected one per query head: {n_heads}.", "wrong_length")
    if given == [h % n_kv_heads for h in range(n_heads)]:
        return _wrong("7", "that is i % H_KV (torch's repeat, heads dealt out in turn). Llama repeats each key/value "
                           "head N_REP times in a row (repeat_interleave): query head i reads i // N_REP.", "modulo")
    first = next(h for h in range(n_heads) if given[h] != expected[h])
    return _wrong("7", f"query head {first} reads key/value head {expected[first]}, not {given[first]}.",
                  "wrong_values")


# --- 9. SwiGLU ----------------------------------------------------------------------------------------------------

def check_feed_forward(fn, feed_forward: Callable, x: Tensor, w: Mapping[str, Tensor]) -> Verdict:
    """Try it 9: the reader's SwiGLU against the notebook's feed_forward."""
    out, verdict = _call("9", fn, x, dict(w))
    if verdict:
        return verdict
    lin = lambda a, name: a @ w[name].to(a.dtype).T  # noqa: E731
    f = torch.nn.functional
    gate, up = lin(x, "w1"), lin(x, "w3")
    mistakes = {
        "gate_swapped": (lin(f.silu(up) * gate, "w2"), "SiLU is applied to the wrong branch: it gates x·W1ᵀ; "
                                                       "x·W3ᵀ passes through unchanged."),
        "relu": (lin(f.relu(gate) * up, "w2"), "that is ReLU: Llama's gate is SiLU, x·σ(x)."),
        "gelu": (lin(f.gelu(gate) * up, "w2"), "that is GELU: Llama's gate is SiLU, x·σ(x)."),
        "sigmoid": (lin(torch.sigmoid(gate) * up, "w2"), "that is σ(x) alone: SiLU is x·σ(x)."),
        "no_gate": (lin(f.silu(gate), "w2"), "the product with x·W3ᵀ is missing: SwiGLU multiplies SiLU(x·W1ᵀ) by "
                                             "x·W3ᵀ before W2."),
    }
    return _compare("9", out, feed_forward(x, w), "your result", mistakes)


# --- 11. The next token -------------------------------------------------------------------------------------------

def check_earlier_prediction(answer, output_logits: Callable, model, hidden_states: Sequence[Tensor],
                             prompt_tokens: Sequence[int], tokenizer) -> Verdict:
    """Try it 11: the token predicted at the second-to-last position, from the notebook's output_logits."""
    if len(prompt_tokens) < 2:
        return Verdict("11", OPEN, "needs a prompt of at least 2 tokens; this one has 1.")
    if _is_open(answer):
        return _open("11")
    expected = int(output_logits(model, hidden_states[-1][-2]).argmax())
    try:
        given = int(answer)
    except (TypeError, ValueError):
        return _wrong("11", f"expected a token id (an int), got {answer!r:.80}.", "not_an_id")
    said = lambda t: f"{t} = {tokenizer.decode([t])!r}"  # noqa: E731
    if given == expected:
        real = prompt_tokens[-1]
        guessed = "which *is* the prompt's last token" if given == real else f"where the prompt has {said(real)}"
        return _right("11", f"after the second-to-last token the model expected {said(given)}, {guessed}.")
    if given == int(output_logits(model, hidden_states[-1][-1]).argmax()):
        return _wrong("11", "that is the prediction at the last position (the next token): take the hidden state "
                            "of the second-to-last position, hidden_states[-1][-2].", "last_position")
    if given == int(output_logits(model, hidden_states[-2][-2]).argmax()):
        return _wrong("11", "that comes from hidden_states[-2], the input of the last layer: the prediction uses the "
                            "output of all L layers, hidden_states[-1].", "wrong_layer")
    return _wrong("11", f"the model's most likely token there is {said(expected)}, not {said(given)}.", "wrong_values")


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
        "forgot_scale": (q @ k.T, "the division by sqrt(Dh) is missing."),
        "transposed": ((q @ k.T / math.sqrt(q.shape[-1])).T, "transposed: rows are queries, q @ k.T, not k @ q.T."),
        "masked": (expected + mask, "these are the scores after the mask: the exercise asks for them before it."),
    }
    q0, k0 = scores_of(layer, head, rope=False)
    mistakes["forgot_rope"] = (q0 @ k0.T / math.sqrt(q.shape[-1]), "RoPE is missing: rotate the queries and keys "
                                                                   "with apply_rope before their product.")
    qn, kn = scores_of(layer, head, norm=False)
    mistakes["forgot_norm"] = (qn @ kn.T / math.sqrt(q.shape[-1]), "the layer's RMSNorm (attention_norm) is missing: "
                                                                   "project the normalized hidden state.")
    qm, km = scores_of(layer, head, kv=0)
    mistakes["wrong_kv_head"] = (qm @ km.T / math.sqrt(q.shape[-1]), f"those keys are key/value head 0's: query "
                                                                     f"head {head} reads key/value head {head} // N_REP.")
    for other, name in [(0, "layer 0"), (nb.get("HEATMAP_LAYER", 0), "HEATMAP_LAYER")]:
        if other != layer:
            qo, ko = scores_of(other, head)
            mistakes[f"wrong_layer_{other}"] = (qo @ ko.T / math.sqrt(q.shape[-1]),
                                                f"those are the scores of {name}: use hidden_states[{layer}] and "
                                                f"layer_weights(model, {layer}).")
    if head != 0:
        qh, kh = scores_of(layer, 0)
        mistakes["wrong_head"] = (qh @ kh.T / math.sqrt(q.shape[-1]), f"those are head 0's scores: take head {head}.")
    return _compare("12", answer, expected, "your scores", mistakes)


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
        return _wrong("15", f"expected a number of bytes, got {answer!r:.80}.", "not_a_number")
    gib = lambda b: f"{b / 2**30:,.2f} GiB"  # noqa: E731
    if given == expected:
        return _right("15", f"{expected:,} bytes = {gib(expected)}, for one sequence of {n_tokens:,} tokens.")
    known = {
        "all_heads": (kv_cache_bytes(layers, n_tokens, heads, head_dim, bytes_per_value),
                      f"{heads // kv_heads}× too much: keys and values have only n_kv_heads = {kv_heads} heads "
                      f"(GQA), not {heads}."),
        "keys_only": (expected / 2, "half of it: the cache holds keys *and* values."),
        "float32": (expected * 2, f"that is float32 (4 bytes); bf16 takes {bytes_per_value}."),
        "one_layer": (expected / layers, f"that is one layer: every one of the {layers} layers keeps its own."),
        "thousands": (kv_cache_bytes(layers, n_tokens // 1024 * 1000, kv_heads, head_dim, bytes_per_value),
                      f"8K tokens here is {n_tokens:,} (8 × 1024), not 8,000."),
    }
    for mistake, (value, message) in known.items():
        if math.isclose(given, value, rel_tol=1e-9):
            return _wrong("15", message, mistake)
    for unit, size in [("GiB", 2**30), ("MiB", 2**20), ("GB", 1e9), ("MB", 1e6)]:
        if math.isclose(given * size, expected, rel_tol=1e-3):
            return _wrong("15", f"that is the right size in {unit}: give it in bytes, {expected:,}.", "units")
    return _wrong("15", f"{given:,.0f} bytes ({gib(given)}); expected {gib(expected)}. Count: 2 (keys and values) × "
                        "layers × tokens × n_kv_heads × head_dim × bytes per number.", "wrong_values")


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
        return _wrong("16", "the notebook's sample_top_p drew a token outside the top-p set: was it changed? "
                            "Run its cell (section 16) again.", "sample_top_p_changed")
    early = torch.where(torch.cumsum(sorted_probs, 0) > p, 0.0, sorted_probs)
    mistakes = {
        "not_renormalized": (torch.zeros_like(probs).scatter(0, order, kept), "not renormalized: the kept "
                                                                              "probabilities must sum to 1 again."),
        "sorted_order": (kept / kept.sum(), "that is the sorted order: put each probability back at its token's "
                                            "place."),
    }
    if early.sum() > 0:
        mistakes["stopped_early"] = (torch.zeros_like(probs).scatter(0, order, early / early.sum()),
                                     "you stopped before the token that crosses p: Meta keeps a token while the "
                                     "ones *before* it hold at most p, so the kept set holds more than p.")
    return _compare("16", answer, expected, "your probabilities", mistakes)


# --- 18. The batch ------------------------------------------------------------------------------------------------

def check_forward_calls(answer, lengths: Sequence[int], max_new_tokens: int, max_seq_len: int) -> Verdict:
    """Try it 18: how many times generate_batch calls forward when no row stops (its loop's range)."""
    if _is_open(answer):
        return _open("18")
    total_len = min(max(lengths) + max_new_tokens, max_seq_len)
    expected = total_len - min(lengths)
    try:
        given = int(answer)
    except (TypeError, ValueError):
        return _wrong("18", f"expected a number of calls (an int), got {answer!r:.80}.", "not_a_number")
    if given == expected:
        return _right("18", f"from position {min(lengths)} (the shortest prompt) to {total_len}: the longer prompts "
                            "are fed their own tokens on the way.")
    if given in (max_new_tokens, total_len - max(lengths)):
        return _wrong("18", "that counts from the longest prompt: the batch starts decoding at the *shortest* prompt's "
                            "length, min(lengths).", "from_longest")
    if given == total_len:
        return _wrong("18", "that counts from position 0: the first call is a prefill of min(lengths) tokens at once.",
                      "from_zero")
    if given == len(lengths) * expected:
        return _wrong("18", "one call serves all rows at once: count the steps, not steps × rows.", "per_row")
    return _wrong("18", f"{given} calls; count the positions from min(lengths) = {min(lengths)} up to total_len = "
                        "min(max(lengths) + MAX_NEW_TOKENS, max_seq_len).", "wrong_values")
