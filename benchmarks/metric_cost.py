"""Cost per call of every collapse metric in ``collapsetune.metrics`` on a typical batch (issue 25).

Inputs, fixed by seed, one per family:
  text        64 generated sequences of 32 tokens, vocab 1024: as a LongTensor (64, 32), and
              as 64 texts of 32 words (the word path maps words to ids first)
  embeddings  (256, 512) float32 embeddings
  outputs     the 64 texts as a set of outputs
  captions    64 captions of 8-12 words with 5 references each (BLEU-4 and CIDEr-D too)
  sub-prompts (C=10, K=4, D=512) prompts and 256 features with labels

Each metric is timed over ``--rounds`` rounds; a round calls it enough times to fill about
0.2 s, so a short call is not timer noise; the table gives the median per call and the
spread over rounds. Torch uses 1 thread, as the sweeps do. On ``--device cuda`` the
tensors live on the GPU and each round ends with a synchronize.

Run:  python benchmarks/metric_cost.py [--device cpu|cuda] [--rounds 7]
Prints a table and writes benchmarks/results/metric_cost.json (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from collapsetune import metrics as m

ROOT = Path(__file__).resolve().parent.parent
ROUND_SECONDS = 0.2


def inputs(device: torch.device, n_texts: int = 64, n_tokens: int = 32, n_emb: int = 256, dim: int = 512) -> dict:
    g = torch.Generator().manual_seed(0)
    rng = random.Random(0)
    # Zipf-like token draws, as generated text has, rather than uniform ones.
    zipf = 1.0 / torch.arange(1, 1025, dtype=torch.float64)
    ids = torch.multinomial(zipf / zipf.sum(), n_texts * n_tokens, replacement=True, generator=g)
    ids = ids.reshape(n_texts, n_tokens)
    texts = [" ".join(f"w{t}" for t in row) for row in ids.tolist()]
    words = [f"w{i}" for i in range(40)]
    caps = [[rng.choice(words) for _ in range(rng.randint(8, 12))] for _ in range(n_texts)]
    refs = [[[rng.choice(words) for _ in range(rng.randint(8, 12))] for _ in range(5)] for _ in range(n_texts)]
    labels = torch.randint(0, 10, (n_emb,), generator=g)
    return {
        "ids": ids.to(device), "texts": texts, "caps": caps, "refs": refs,
        "logits": torch.randn(16, n_tokens, 1024, generator=g).to(device),
        "emb": torch.randn(n_emb, dim, generator=g).to(device),
        "prompts": torch.randn(10, 4, dim, generator=g).to(device),
        "labels": labels.to(device), "assign": torch.randint(0, 4, (n_emb,), generator=g).to(device),
    }


def calls(x: dict) -> dict[str, tuple[str, str, Callable[[], object]]]:
    """label -> (family, input, call)."""
    ids, texts, emb = x["ids"], x["texts"], x["emb"]
    return {
        "argmax_unique": ("text", "logits (16, 32, 1024)", lambda: m.argmax_unique(x["logits"])),
        **{f"{name} (ids)": ("text", "ids (64, 32)", lambda f=f: f(ids)) for name, f in [
            ("unique_tokens", m.unique_tokens), ("distinct_n n=2", lambda s: m.distinct_n(s, 2)),
            ("unigram_entropy", m.unigram_entropy), ("repetition k=4", m.repetition),
            ("top_token_share", m.top_token_share), ("zipf_coefficient", m.zipf_coefficient),
            ("self_bleu max_n=4", m.self_bleu)]},
        **{f"{name} (texts)": ("text", "64 texts x 32 words", lambda f=f: f(texts)) for name, f in [
            ("distinct_n n=2", lambda s: m.distinct_n(s, 2)), ("repetition k=4", m.repetition),
            ("top_token_share", m.top_token_share), ("zipf_coefficient", m.zipf_coefficient),
            ("self_bleu max_n=4", m.self_bleu)]},
        **{name: ("embeddings", "(256, 512) float32", lambda f=f: f(emb)) for name, f in [
            ("effective_rank", m.effective_rank), ("vendi_score", m.vendi_score),
            ("mean_pairwise_cosine", m.mean_pairwise_cosine),
            ("vanishing_singular_values", m.vanishing_singular_values)]},
        **{f"{name} (texts)": ("outputs", "64 texts", lambda f=f: f(texts)) for name, f in [
            ("unique_outputs", m.unique_outputs), ("top_output_share", m.top_output_share)]},
        **{f"{name} (ids)": ("outputs", "ids (64, 32)", lambda f=f: f(ids)) for name, f in [
            ("unique_outputs", m.unique_outputs), ("top_output_share", m.top_output_share)]},
        **{name: ("captions", "64 captions, 5 refs each", lambda f=f: f(x["caps"], x["refs"])) for name, f in [
            ("bleu4", m.bleu4), ("cider_d", m.cider_d)]},
        **{name: ("captions", "64 captions", lambda f=f: f(x["caps"])) for name, f in [
            ("unique_captions", m.unique_captions), ("top_caption_share", m.top_caption_share),
            ("distinct_ngrams n=2", lambda c: m.distinct_ngrams(c, 2)), ("vocab_used", m.vocab_used)]},
        **{name: ("sub-prompts", "(10, 4, 512)", lambda f=f: f(x["prompts"])) for name, f in [
            ("subprompt_cos_max", m.subprompt_cos_max), ("subprompt_cos_mean", m.subprompt_cos_mean)]},
        "hard_assignments": ("sub-prompts", "256 features, (10, 4, 512)",
                             lambda: m.hard_assignments(emb, x["labels"], x["prompts"])),
        **{name: ("sub-prompts", "256 assignments, K=4", lambda f=f: f(x["assign"], x["labels"], 4)) for name, f in [
            ("assign_max_share", m.assign_max_share), ("assign_entropy", m.assign_entropy),
            ("dead_subprompts", m.dead_subprompts)]},
    }


def time_call(call: Callable[[], object], rounds: int, sync: Callable[[], None]) -> list[float]:
    """Seconds per call in each round (the first call is warm-up and not counted)."""
    call()
    sync()
    start = time.perf_counter()
    call()
    sync()
    reps = max(1, int(ROUND_SECONDS / max(time.perf_counter() - start, 1e-7)))
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            call()
        sync()
        out.append((time.perf_counter() - start) / reps)
    return out


def run(device: str, rounds: int) -> dict:
    torch.set_num_threads(1)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = []
    for label, (family, shape, call) in calls(inputs(dev)).items():
        per_call = time_call(call, rounds, sync)
        q = statistics.quantiles(per_call, n=4) if len(per_call) > 1 else per_call * 3
        rows.append({"metric": label, "family": family, "input": shape,
                     "ms_per_call": 1e3 * statistics.median(per_call), "ms_q25": 1e3 * q[0], "ms_q75": 1e3 * q[2]})
    return {"device": device, "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "rounds": rounds, "round_seconds": ROUND_SECONDS,
            "rows": rows}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "metric_cost.json")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    result = run(args.device, args.rounds)
    print("| metric | family | input | ms per call (median) | IQR over rounds |\n|---|---|---|---|---|")
    for r in result["rows"]:
        print(f"| {r['metric']} | {r['family']} | {r['input']} | {r['ms_per_call']:.3g} | "
              f"{r['ms_q25']:.3g}-{r['ms_q75']:.3g} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
