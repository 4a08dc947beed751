"""The solutions of the notebook's "Try it" exercises, for teachers; and a solved copy of a notebook.

Usage:
    python scripts/exercise_solutions.py solved.ipynb                          # the English notebook, solved
    python scripts/exercise_solutions.py solved.zh.ipynb --notebook llama3-from-scratch.zh.ipynb

An exercise's answer cell is the code cell tagged "exercise" whose first line is "# Try it N: ...". The copy has
each answer cell replaced by its solution below and no outputs; run it (jupyter nbconvert --execute, or in
Jupyter) and every check says "correct", in the notebook's LANGUAGE: "✓ 动手试试 N：正确。" in the Chinese edition.
tests/test_exercises.py does exactly that, for both editions.
"""

import argparse
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "llama3-from-scratch.ipynb"
EXERCISE_LINE = re.compile(r"# Try it (\w+):")

SOLUTIONS = {
    "2": '''# Try it 2: the ids of "Hello, world!" as a Llama 3 prompt, BOS first
my_ids = [BOS] + llama3_tokenizer.encode("Hello, world!")''',
    "4": '''# Try it 4: the embedding of the prompt's last token, (D,)
my_embedding = model.checkpoint["tok_embeddings.weight"][prompt_tokens[-1]].to(dtype)  # row = the token's id''',
    "5": '''# Try it 5: RMSNorm from the formula, (T, D) -> (T, D)
def my_rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    x32 = x.float()  # squares in float32: float16 would overflow, bf16 would round
    return (x32 / torch.sqrt((x32 * x32).mean(dim=-1, keepdim=True) + eps)).type_as(x) * weight''',
    "6a": '''# Try it 6a: q[0] rotated to position 5, (Dh,)
rotation_5 = rope_frequencies(Dh, 6, cfg.rope_theta, cfg.use_scaled_rope, cfg.rope_scaling_factor)[5]  # (Dh/2,)
my_q_at_5 = apply_rope(q[:1], rotation_5[None].to(device))[0]''',
    "6b": '''# Try it 6b: causal mask + softmax, (T, T) -> (T, T)
def my_attention_weights(scores: Tensor) -> Tensor:
    T_q, T_k = scores.shape
    future = torch.ones(T_q, T_k, dtype=torch.bool, device=scores.device).triu(diagonal=1)
    return torch.softmax(scores.float().masked_fill(future, float("-inf")), dim=-1).type_as(scores)''',
    "7": '''# Try it 7: the key/value head of every query head, a list of H ints
my_kv_head_of = [head // N_REP for head in range(H)]''',
    "9": '''# Try it 9: SwiGLU, (T, D) -> (T, D)
def my_feed_forward(x: Tensor, layer: dict[str, Tensor]) -> Tensor:
    gate, up = linear(x, layer["w1"]), linear(x, layer["w3"])  # (T, D) @ (D, F) -> (T, F)
    return linear(gate * torch.sigmoid(gate) * up, layer["w2"])  # SiLU(g) = g·σ(g); (T, F) @ (F, D) -> (T, D)''',
    "11": '''# Try it 11: the token id predicted at the second-to-last position
my_guess = int(output_logits(model, hidden_states[-1][-2]).argmax())
print(repr(tokenizer.decode([my_guess])), "in place of", repr(tokenizer.decode([prompt_tokens[-1]])))''',
    "12": '''# Try it 12: the scores of query head H - 1 in layer L - 1, before the mask, (T, T)
last_layer = layer_weights(model, L - 1)
q_last, k_last, _ = project_qkv(rms_norm(hidden_states[L - 1], last_layer["attention_norm"], cfg.norm_eps), last_layer, H, H_KV)
q_last, k_last = apply_rope(q_last, freqs_cis), apply_rope(k_last, freqs_cis)
my_scores = q_last[:, H - 1] @ k_last[:, (H - 1) // N_REP].T / math.sqrt(Dh)''',
    "15": '''# Try it 15: Llama 3 70B's sizes, from its params.json; 8K tokens; bf16 takes 2 bytes per number
llama3_70b = {"dim": 8192, "n_layers": 80, "n_heads": 64, "n_kv_heads": 8}
tokens_70b, bytes_70b = 8192, 2
head_dim_70b = llama3_70b["dim"] // llama3_70b["n_heads"]
my_kv_bytes = 2 * llama3_70b["n_layers"] * tokens_70b * llama3_70b["n_kv_heads"] * head_dim_70b * bytes_70b
print(f"{my_kv_bytes / 2**30:.2f} GiB")''',
    "16": '''# Try it 16: the distribution top-p draws from, for toy_probs and toy_p
toy_probs, toy_p = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.15]), 0.6
sorted_probs, order = toy_probs.sort(descending=True)
kept = sorted_probs * ((sorted_probs.cumsum(0) - sorted_probs) <= toy_p)  # kept while the ones before hold <= p
my_top_p = torch.zeros(5).scatter(0, order, kept / kept.sum())''',
    "18": '''# Try it 18: forward calls for this batch with 4 x MAX_NEW_TOKENS new tokens, if no row stops early
more_new_tokens = 4 * MAX_NEW_TOKENS
my_forward_calls = min(max(lengths) + more_new_tokens, cfg.max_seq_len) - min(lengths)''',
}


def exercise_cells(notebook) -> dict[str, object]:
    """Exercise id -> its answer cell."""
    found = {}
    for cell in notebook.cells:
        if cell.cell_type == "code" and "exercise" in cell.metadata.get("tags", []):
            match = EXERCISE_LINE.match(cell.source)
            if not match:
                raise ValueError(f"an exercise cell without a '# Try it N:' first line: {cell.source[:80]!r}")
            found[match.group(1)] = cell
    return found


def solved(notebook):
    """A copy of the notebook with every answer cell replaced by its solution, outputs cleared."""
    copy = nbformat.reads(nbformat.writes(notebook), as_version=4)
    cells = exercise_cells(copy)
    missing = sorted(set(cells) - set(SOLUTIONS))
    if missing:
        raise ValueError(f"no solution for exercise(s) {missing}: add them to SOLUTIONS")
    for exercise, cell in cells.items():
        cell.source = SOLUTIONS[exercise]
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return copy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="where to write the solved notebook")
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK, help="the notebook to solve (default: the English one)")
    args = parser.parse_args()
    if not args.notebook.is_file():
        print(f"error: {args.notebook} does not exist", file=sys.stderr)
        return 2
    if args.out.resolve() == args.notebook.resolve():
        print("error: the solved copy must not overwrite the notebook itself; give another file name", file=sys.stderr)
        return 2
    try:
        notebook = solved(nbformat.read(args.notebook, as_version=4))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    nbformat.write(notebook, args.out)
    print(f"wrote {args.out}: {len(exercise_cells(notebook))} exercises solved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
