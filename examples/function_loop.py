"""An ordinary PyTorch training loop made a collapse-aware sweep: the lines marked
`# collapsetune` are all it took, 10 added or changed (tests/test_examples.py counts them);
6 without checkpoints (the 4 lines of `get_checkpoint` and `checkpoint=`), at the price of
restarting a resumed trial and of PBT.

    collapsetune run examples/function_loop.yaml

`train(config)` still runs on its own (`python examples/function_loop.py`): outside a sweep
`session.report` does nothing and `session.get_checkpoint()` is None.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from charlm import CharMLP, batch, corpus, generate

from collapsetune import session  # collapsetune
from collapsetune.metrics import distinct_n, unique_tokens  # collapsetune


def train(config: dict) -> None:
    torch.manual_seed(config.get("seed", 0))
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(config.get("seed", 0))
    ids, vocab = corpus()
    train_ids, val_ids = ids[:27_000], ids[27_000:]
    model = CharMLP(vocab, config["context"], config["width"])
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    ckpt = session.get_checkpoint() or {}  # collapsetune: resume and PBT copies start here
    if ckpt:  # collapsetune
        model.load_state_dict(ckpt["model"]), opt.load_state_dict(ckpt["opt"]), gen.set_state(ckpt["gen"])  # collapsetune
    val_x, val_y = batch(val_ids, config["context"], 512, torch.Generator().manual_seed(1))
    for epoch in range(ckpt.get("epoch", 0), config["max_iterations"]):  # collapsetune (was: range(config["epochs"]))
        for _ in range(config["steps_per_epoch"]):
            x, y = batch(train_ids, config["context"], 64, gen)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(val_x), val_y).item()
        text = generate(model, val_x[:16], 24)  # collapsetune: (16, 24) greedy continuations to judge
        session.report({"train/loss": loss.item(), "val/loss": val_loss, "collapse/unique_tokens": unique_tokens(text),  # collapsetune
                        "collapse/distinct_2": distinct_n(text, 2)},  # collapsetune
                       checkpoint={"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "epoch": epoch + 1})  # collapsetune


if __name__ == "__main__":
    train({"lr": 3e-3, "context": 8, "width": 64, "steps_per_epoch": 100, "max_iterations": 5})
