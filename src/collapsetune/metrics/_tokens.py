"""One reader of token input for the text metrics: token ids or words, in one flat tensor.

A metric takes ``seqs`` as any of:
  - a LongTensor (T,) or (N, T) of token ids;
  - a list of token id lists (ragged allowed) or of 1-D integer tensors;
  - a list of texts (each split on whitespace) or of word lists.
Words and ids become one flat int64 tensor, so counting and n-grams are tensor ops.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

Seqs = torch.Tensor | Sequence[str] | Sequence[Sequence[Hashable]]


@dataclass(frozen=True)
class Tokens:
    """N sequences as one flat id tensor: sequence ``i`` is ``ids[row == i]``, in order."""

    ids: torch.Tensor  # (L,) int64
    row: torch.Tensor  # (L,) the sequence of each token
    pos: torch.Tensor  # (L,) the position of each token in its sequence
    lengths: torch.Tensor  # (N,)

    @property
    def n(self) -> int:
        return len(self.lengths)

    def ngrams(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(M,) an id for every n-gram that lies inside one sequence (equal n-grams, equal ids), (M,) its sequence.

        An n-gram's id is built from its (n-1)-gram's id and its last token, one 1-D
        ``unique`` per order: far faster than ``unique(dim=0)`` over (M, n) rows on CPU.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        tok = self.ids.unique(return_inverse=True)[1] if len(self.ids) else self.ids  # (L,) ids in [0, V)
        v = len(self.ids) + 1  # > every compact id, so gid * v + next is one-to-one
        gid = tok
        for k in range(1, n):
            nxt = torch.cat([tok[k:], tok.new_zeros(min(k, len(tok)))])  # the token k after each start
            gid = (gid * v + nxt).unique(return_inverse=True)[1]
        inside = self.pos + n <= self.lengths[self.row]
        return gid[inside], self.row[inside]


def _token(t: object, name: str, i: int) -> Hashable:
    if isinstance(t, str):
        return t
    if isinstance(t, float) and not t.is_integer():  # NaN, inf and 1.5 are not token ids
        raise ValueError(f"{name}[{i}] holds {t!r}: tokens must be integer ids or strings")
    try:
        return int(t)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"{name}[{i}] holds {t!r}: tokens must be integer ids or strings") from None


def _sequence(s: object, name: str, i: int) -> list[Hashable]:
    if isinstance(s, str):
        return s.split()  # type: ignore[return-value]
    if isinstance(s, torch.Tensor):
        if s.is_floating_point() or s.is_complex() or s.dim() > 1:
            raise ValueError(f"{name}[{i}] must be a 1-D integer tensor, got {s.dtype} of shape {tuple(s.shape)}")
        return s.reshape(-1).tolist()
    try:
        return [_token(t, name, i) for t in s]  # type: ignore[attr-defined]
    except TypeError:
        raise ValueError(f"{name}[{i}] must be a text or a token sequence, got {type(s).__name__}") from None


def as_tokens(seqs: Seqs, name: str = "seqs") -> Tokens:
    """Read ``seqs`` (see the module docstring); ValueError naming ``name`` if it is not one."""
    if isinstance(seqs, torch.Tensor):
        if seqs.is_floating_point() or seqs.is_complex() or seqs.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer token ids, got dtype {seqs.dtype}")
        if seqs.dim() not in (1, 2):
            raise ValueError(f"{name} must be (T,) or (N, T) token ids, got shape {tuple(seqs.shape)}")
        ids = seqs.reshape(1, -1) if seqs.dim() == 1 else seqs  # (N, T)
        if ids.shape[0] == 0:
            raise ValueError(f"{name} is empty: need at least one sequence")
        n, t = ids.shape
        dev = ids.device
        return Tokens(ids.reshape(-1).long(), torch.arange(n, device=dev).repeat_interleave(t),
                      torch.arange(t, device=dev).repeat(n), torch.full((n,), t, device=dev))
    if isinstance(seqs, str):
        raise ValueError(f"{name} must be a list of texts or token sequences, got one str (wrap it in a list)")
    lists = [_sequence(s, name, i) for i, s in enumerate(seqs)]
    if not lists:
        raise ValueError(f"{name} is empty: need at least one sequence")
    vocab: dict[Hashable, int] = {}
    flat = [vocab.setdefault(t, len(vocab)) for s in lists for t in s]
    lengths = torch.tensor([len(s) for s in lists])
    row = torch.arange(len(lists)).repeat_interleave(lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    pos = torch.arange(len(flat)) - starts[row]
    return Tokens(torch.tensor(flat, dtype=torch.long), row, pos, lengths)
