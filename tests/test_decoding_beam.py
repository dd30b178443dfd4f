"""Sequence decoding on hand-made next-token tables, where the right answer is known."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from collapsetune.decoding import (
    SequenceDecodingConfig,
    beam_search,
    decode_sequences,
    sample_sequences,
)

PAD, BOS, EOS, A, B = range(5)
# P(next | previous token). Greedy takes A (0.6) then EOS (0.4): 0.24. The best sequence is
# B EOS: 0.4 * 0.95 = 0.38, which only a search that keeps B alive finds.
TABLE = {
    BOS: {A: 0.6, B: 0.4},
    A: {EOS: 0.4, A: 0.3, B: 0.3},
    B: {EOS: 0.95, A: 0.05},
}


def _logits(table: dict[int, dict[int, float]]) -> torch.Tensor:
    out = torch.full((5, 5), -1e4)  # (previous token, next token); unlisted ~ impossible
    for prev, nxt in table.items():
        for tok, p in nxt.items():
            out[prev, tok] = math.log(p)
    out[EOS, EOS] = 0.0
    return out


LOGITS = _logits(TABLE)


def markov_step(tokens: torch.Tensor, state: tuple[torch.Tensor, ...]):
    """Logits depend on the previous token only; state carries a row id, to check reordering."""
    return LOGITS[tokens], state


def _logprob(seq: tuple[int, ...]) -> float:
    prev, total = BOS, 0.0
    for tok in seq:
        total += LOGITS[prev].log_softmax(-1)[tok].item()
        prev = tok
    return total


def _best_by_enumeration(max_len: int) -> tuple[int, ...]:
    seqs = [s for n in range(1, max_len + 1) for s in itertools.product((A, B, EOS), repeat=n)
            if (s[-1] == EOS or n == max_len) and EOS not in s[:-1]]
    return max(seqs, key=_logprob)


def _strip(ids: list[int]) -> tuple[int, ...]:
    return tuple(ids[: ids.index(EOS) + 1]) if EOS in ids else tuple(ids)


def test_greedy_misses_the_best_sequence():
    out = decode_sequences(markov_step, (torch.zeros(1),), BOS, EOS, 4, SequenceDecodingConfig("greedy"))
    assert _strip(out[0].tolist()) == (A, EOS)


def test_beam_finds_the_known_best_sequence():
    best = _best_by_enumeration(4)
    assert best == (B, EOS)
    ids, scores = beam_search(markov_step, (torch.zeros(1),), BOS, EOS, 4, beam_size=2)
    assert _strip(ids[0, 0].tolist()) == best
    assert scores[0, 0].item() == pytest.approx(math.log(0.38), abs=1e-4)
    assert scores[0, 0] >= scores[0, 1]  # best first
    cfg = SequenceDecodingConfig("beam", beam_size=3)
    assert _strip(decode_sequences(markov_step, (torch.zeros(1),), BOS, EOS, 4, cfg)[0].tolist()) == best


def test_beam_reorders_state_per_input():
    # Two inputs whose tables differ: row 1 prefers A then EOS strongly.
    other = _logits({BOS: {A: 0.9, B: 0.1}, A: {EOS: 0.99, B: 0.01}, B: {EOS: 0.1, A: 0.9}})

    def step(tokens, state):
        row = state[0]  # (N,) which input each beam belongs to
        return torch.where((row == 1)[:, None], other[tokens], LOGITS[tokens]), state

    ids, _ = beam_search(step, (torch.tensor([0, 1]),), BOS, EOS, 4, beam_size=3)
    assert _strip(ids[0, 0].tolist()) == (B, EOS)
    assert _strip(ids[1, 0].tolist()) == (A, EOS)


def test_diverse_beam_groups_differ():
    # One beam per group: without a penalty both groups follow the same path.
    same, _ = beam_search(markov_step, (torch.zeros(1),), BOS, EOS, 4, beam_size=2, num_groups=2)
    assert same[0, 0].tolist() == same[0, 1].tolist()
    # With the Hamming penalty, group 2 may not reuse group 1's first token cheaply.
    ids, _ = beam_search(markov_step, (torch.zeros(1),), BOS, EOS, 4, beam_size=2, num_groups=2,
                         diversity_penalty=2.0)
    first = {ids[0, 0, 0].item(), ids[0, 1, 0].item()}
    assert first == {A, B}
    # Returned best first by plain log-probability: B EOS (0.38) over A EOS (0.24).
    assert _strip(ids[0, 0].tolist()) == (B, EOS) and _strip(ids[0, 1].tolist()) == (A, EOS)


def test_top_p_keeps_exactly_the_nucleus():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = torch.full((5, 4), -1e4)
    logits[BOS] = probs.log()

    def step(tokens, state):
        return logits[tokens.clamp(max=4)], state

    g = torch.Generator().manual_seed(0)
    state = (torch.zeros(2000),)
    for p, nucleus in ((0.8, {0, 1}), (0.81, {0, 1, 2}), (0.5, {0}), (1.0, {0, 1, 2, 3})):
        out = sample_sequences(step, state, BOS, EOS, 1, g, strategy="top_p", top_p=p)
        assert set(out[:, 0].tolist()) == nucleus, p


def test_top_k_and_temperature_sequences():
    g = torch.Generator().manual_seed(0)
    state = (torch.zeros(500),)
    top1 = sample_sequences(markov_step, state, BOS, EOS, 3, g, strategy="top_k", top_k=1)
    assert (top1[:, 0] == A).all()  # k=1 is greedy
    hot = sample_sequences(markov_step, state, BOS, EOS, 3, g, strategy="temperature", temperature=1.0)
    share_b = (hot[:, 0] == B).float().mean().item()
    assert 0.33 < share_b < 0.47  # P(B) = 0.4
    cold = sample_sequences(markov_step, state, BOS, EOS, 3, g, strategy="temperature", temperature=0.1)
    assert (cold[:, 0] == B).float().mean().item() < 0.05
    # Finished rows keep emitting EOS.
    assert all(_strip(r) == tuple(r[: len(_strip(r))]) for r in hot.tolist())
    assert all(t == EOS for r in hot.tolist() if EOS in r for t in r[r.index(EOS):])


def test_sequence_decoding_config_validates():
    for bad in ({"strategy": "nucleus"}, {"strategy": "top_p", "top_p": 0.0}, {"beam_size": 0},
                {"strategy": "diverse_beam", "beam_size": 4, "beam_groups": 1},
                {"strategy": "diverse_beam", "beam_size": 5, "beam_groups": 2},
                {"diversity_penalty": -1.0}):
        with pytest.raises(ValueError):
            SequenceDecodingConfig(**bad)
