"""Token sampling and sequence search shared by every generative model (the LM, the captioner).

Per-token sampling (:func:`sample_next`, :func:`generate`) serves the LM; whole-sequence
decoding for an encoder-decoder (:func:`decode_sequences`: the sampling strategies plus
:func:`beam_search`, whose ``num_groups > 1`` is diverse beam search with a Hamming
diversity penalty, Vijayakumar et al. 2016) serves the audio captioner. Both drive a model
through a plain function, so this module knows no model.

Example:
    >>> logits = torch.tensor([[0.0, 2.0, 1.0]])
    >>> sample_next(logits, "greedy")
    tensor([1])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

__all__ = [
    "SEQUENCE_STRATEGIES", "STRATEGIES", "DecodingConfig", "SequenceDecodingConfig", "StepFn",
    "beam_search", "decode_sequences", "generate", "sample_next", "sample_sequences",
    "top_k_filter", "top_p_filter",
]

STRATEGIES = ("greedy", "temperature", "top_k", "top_p")
SEQUENCE_STRATEGIES = (*STRATEGIES, "beam", "diverse_beam")

State = tuple[torch.Tensor, ...]  # every tensor has the rows (N, ...) of the sequences decoded
# (last tokens (N,), state) -> (next-token logits (N, V), new state)
StepFn = Callable[[torch.Tensor, State], tuple[torch.Tensor, State]]


@dataclass(frozen=True)
class DecodingConfig:
    """How to pick the next token; validated on construction.

    Example:
        >>> DecodingConfig(strategy="top_p", top_p=0.9).sampling()["top_p"]
        0.9
    """

    strategy: str = "greedy"  # greedy | temperature | top_k | top_p
    temperature: float = 1.0  # divides logits for every sampling strategy
    top_k: int = 0  # tokens kept by top_k; 0 = all
    top_p: float = 1.0  # nucleus mass kept by top_p; 1 = all

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {self.strategy!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.strategy == "top_k" and self.top_k == 0:
            raise ValueError("top_k must be >= 1 when strategy is 'top_k', got 0")

    def sampling(self) -> dict[str, float | int | str]:
        """Keyword arguments for :func:`sample_next` and :func:`generate`."""
        return asdict(self)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set all but the ``k`` largest logits per row (B, V) to -inf; ``k <= 0`` keeps all."""
    if k <= 0 or k >= logits.size(-1):
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the nucleus: the smallest set of top tokens whose probability sums to >= p.

    At least one token is always kept. Rows are (B, V); removed logits become -inf.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # mass of strictly better tokens
    drop_sorted = mass_before >= p  # the nucleus already reached p without this token
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(
    logits: torch.Tensor,
    strategy: str = "greedy",
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row from logits (B, V); returns ids (B,)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    if strategy == "greedy":
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if strategy == "top_k":
        logits = top_k_filter(logits, top_k)
    elif strategy == "top_p":
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)  # (B, V)
    if generator is not None and generator.device != probs.device:
        # A CPU generator on a GPU trial: draw on the CPU, so a seed picks the same tokens on
        # every device (up to the probabilities' floating-point differences).
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(
    model_fn: Callable[[torch.Tensor], torch.Tensor],
    prompt: torch.Tensor,
    max_new_tokens: int,
    context: int | None = None,
    **sampling: object,
) -> torch.Tensor:
    """Autoregressively extend ``prompt`` (B, T) by ``max_new_tokens``; returns (B, T + new).

    Args:
        model_fn: Maps ids (B, T) to logits (B, T, V).
        prompt: Starting ids (B, T).
        max_new_tokens: Tokens to append.
        context: If given, the model sees only the last ``context`` tokens.
        **sampling: Passed to :func:`sample_next` (strategy, temperature, top_k, top_p,
            generator).
    """
    idx = prompt
    for _ in range(max_new_tokens):
        window = idx if context is None else idx[:, -context:]  # (B, <=context)
        logits = model_fn(window)[:, -1, :]  # (B, V)
        idx = torch.cat([idx, sample_next(logits, **sampling).unsqueeze(-1)], dim=1)
    return idx


@dataclass(frozen=True)
class SequenceDecodingConfig:
    """How an encoder-decoder writes a whole sequence; validated on construction.

    Example:
        >>> SequenceDecodingConfig(strategy="diverse_beam", beam_size=4, beam_groups=2).beam_size
        4
    """

    strategy: str = "greedy"  # greedy | temperature | top_k | top_p | beam | diverse_beam
    temperature: float = 1.0  # sampling strategies only
    top_k: int = 0
    top_p: float = 1.0
    beam_size: int = 5  # beam, diverse_beam: beams in all (diverse: split over the groups)
    beam_groups: int = 1  # diverse_beam: groups; beam_size must be a multiple
    diversity_penalty: float = 0.0  # diverse_beam: Hamming penalty per earlier group's use
    length_penalty: float = 0.0  # beams ranked by logprob / length**length_penalty

    def __post_init__(self) -> None:
        if self.strategy not in SEQUENCE_STRATEGIES:
            raise ValueError(f"strategy must be one of {list(SEQUENCE_STRATEGIES)}, got {self.strategy!r}")
        if self.strategy in STRATEGIES:  # reuse the sampler's checks
            DecodingConfig(self.strategy, self.temperature, self.top_k, self.top_p)
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.beam_groups < 1 or self.beam_size % self.beam_groups:
            raise ValueError(f"beam_groups must be >= 1 and divide beam_size={self.beam_size}, "
                             f"got {self.beam_groups}")
        if self.strategy == "diverse_beam" and self.beam_groups < 2:
            raise ValueError(f"diverse_beam needs beam_groups >= 2, got {self.beam_groups}")
        if self.diversity_penalty < 0:
            raise ValueError(f"diversity_penalty must be >= 0, got {self.diversity_penalty}")


def _select(state: State, rows: torch.Tensor) -> State:
    return tuple(t.index_select(0, rows) for t in state)


@torch.no_grad()
def sample_sequences(
    step_fn: StepFn, state: State, bos: int, eos: int, max_len: int,
    generator: torch.Generator | None = None, **sampling: object,
) -> torch.Tensor:
    """One sequence per row of ``state`` by per-token sampling; returns ids (B, L), eos-padded.

    ``**sampling`` goes to :func:`sample_next` (strategy, temperature, top_k, top_p).
    """
    batch, device = state[0].size(0), state[0].device
    tokens = torch.full((batch,), bos, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    out = []
    for _ in range(max_len):
        logits, state = step_fn(tokens, state)  # (B, V)
        tokens = sample_next(logits, generator=generator, **sampling).masked_fill(done, eos)
        out.append(tokens)
        done |= tokens == eos
        if done.all():
            break
    return torch.stack(out, dim=1)


@torch.no_grad()
def beam_search(
    step_fn: StepFn, state: State, bos: int, eos: int, max_len: int, beam_size: int = 5,
    num_groups: int = 1, diversity_penalty: float = 0.0, length_penalty: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search; with ``num_groups > 1`` diverse beam search (Hamming diversity).

    The beams are split into ``num_groups`` groups of ``beam_size // num_groups``. At every
    step group g picks its beams after group 0..g-1 did, with each token's log-probability
    lowered by ``diversity_penalty`` times the number of beams of earlier groups that chose
    that token at this step. Selection uses the penalised scores (as the paper and HF do);
    the returned ranking uses each sequence's plain log-probability.

    Args:
        step_fn: (last tokens (N,), state) -> (logits (N, V), state); N = rows of ``state``.
        state: Decoder state for B inputs, tensors with B rows; expanded to the beams here.
        bos, eos: Start and end ids; a finished beam keeps emitting ``eos`` at no cost.
        max_len: Tokens generated at most (``eos`` included).

    Returns:
        ids (B, beam_size, L) best first, eos-padded; their scores (B, beam_size)
        (log-probability / length**length_penalty).
    """
    if beam_size < 1 or num_groups < 1 or beam_size % num_groups:
        raise ValueError(f"beam_size ({beam_size}) must be a positive multiple of num_groups ({num_groups})")
    batch, per, device = state[0].size(0), beam_size // num_groups, state[0].device
    rows = torch.arange(batch, device=device).repeat_interleave(beam_size)
    state = _select(state, rows)  # (B*K, ...): beam k of input b is row b*K + k
    tokens = torch.full((batch * beam_size,), bos, dtype=torch.long, device=device)
    logp_sum = torch.zeros(batch, num_groups, per, device=device)
    sel = torch.full((batch, num_groups, per), float("-inf"), device=device)
    sel[:, :, 0] = 0.0  # each group starts from one beam, or all its beams would be copies
    lengths = torch.zeros(batch, num_groups, per, device=device)
    done = torch.zeros(batch, num_groups, per, dtype=torch.bool, device=device)
    history = torch.zeros(batch, num_groups, per, 0, dtype=torch.long, device=device)
    for _ in range(max_len):
        logits, state = step_fn(tokens, state)
        logp = logits.float().log_softmax(-1).view(batch, num_groups, per, -1)  # (B, G, P, V)
        vocab = logp.size(-1)
        # A finished beam may only continue with eos, for free.
        finished = torch.full((vocab,), float("-inf"), device=device)
        finished[eos] = 0.0
        logp = torch.where(done.unsqueeze(-1), finished, logp)
        used = torch.zeros(batch, vocab, device=device)  # tokens chosen at this step by earlier groups
        parents, picks = [], []
        for g in range(num_groups):
            cand = sel[:, g, :, None] + logp[:, g] - diversity_penalty * used[:, None, :]  # (B, P, V)
            best, flat = cand.view(batch, -1).topk(per, dim=-1)  # (B, P)
            parent, token = flat // vocab, flat % vocab
            sel[:, g] = best
            logp_sum[:, g] = logp_sum[:, g].gather(1, parent) + logp[:, g].gather(
                1, parent[..., None].expand(-1, -1, vocab)).gather(2, token[..., None]).squeeze(-1)
            lengths[:, g] = lengths[:, g].gather(1, parent) + (~done[:, g].gather(1, parent)).float()
            done[:, g] = done[:, g].gather(1, parent) | (token == eos)
            used.scatter_add_(1, token, torch.ones_like(token, dtype=torch.float))
            parents.append(parent + g * per)
            picks.append(token)
        parent = torch.stack(parents, 1).view(batch, -1)  # (B, K) beam index within the input
        token = torch.stack(picks, 1)  # (B, G, P)
        history = torch.cat([history.view(batch, beam_size, -1).gather(
            1, parent[..., None].expand(-1, -1, history.size(-1))).view(batch, num_groups, per, -1),
            token[..., None]], dim=-1)
        state = _select(state, (parent + torch.arange(batch, device=device)[:, None] * beam_size).view(-1))
        tokens = token.view(-1)
        if done.all():
            break
    score = logp_sum / lengths.clamp(min=1) ** length_penalty  # (B, G, P)
    score = score.view(batch, beam_size)
    order = score.argsort(dim=-1, descending=True)
    ids = history.view(batch, beam_size, -1).gather(1, order[..., None].expand(-1, -1, history.size(-1)))
    return ids, score.gather(1, order)


def decode_sequences(
    step_fn: StepFn, state: State, bos: int, eos: int, max_len: int,
    config: SequenceDecodingConfig, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One sequence per input with any :data:`SEQUENCE_STRATEGIES`; returns ids (B, L).

    Example:
        >>> table = torch.tensor([[0.0, 2.0, 1.0]])  # always prefers token 1, eos is 2
        >>> step = lambda tok, st: (table.expand(tok.size(0), -1), st)
        >>> decode_sequences(step, (torch.zeros(1),), 0, 2, 3, SequenceDecodingConfig())
        tensor([[1, 1, 1]])
    """
    c = config
    if c.strategy in STRATEGIES:
        return sample_sequences(step_fn, state, bos, eos, max_len, generator,
                                strategy=c.strategy, temperature=c.temperature, top_k=c.top_k, top_p=c.top_p)
    groups = c.beam_groups if c.strategy == "diverse_beam" else 1
    penalty = c.diversity_penalty if c.strategy == "diverse_beam" else 0.0
    ids, _ = beam_search(step_fn, state, bos, eos, max_len, c.beam_size, groups, penalty, c.length_penalty)
    return ids[:, 0]
