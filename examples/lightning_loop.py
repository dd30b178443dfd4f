"""A Lightning training script made a collapse-aware sweep: the lines marked
`# collapsetune` are all it took, 4 added or changed (tests/test_examples.py counts them).

    collapsetune run examples/lightning_loop.yaml

The callback reports `val/loss` and collapse metrics of the model's next-character
predictions on 64 probe windows after every validation, with Lightning's own checkpoint.
"""

from __future__ import annotations

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from charlm import CharMLP, batch, corpus
from torch.utils.data import DataLoader, TensorDataset

from collapsetune.integrations.lightning import CollapseCallback  # collapsetune


class CharModule(L.LightningModule):
    def __init__(self, vocab: int, context: int, width: int, lr: float) -> None:
        super().__init__()
        self.net, self.lr = CharMLP(vocab, context, width), lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, b, _):
        return F.cross_entropy(self.net(b[0]), b[1])

    def validation_step(self, b, _):
        self.log("val/loss", F.cross_entropy(self.net(b[0]), b[1]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def train(config: dict) -> None:
    L.seed_everything(config.get("seed", 0), verbose=False)
    torch.set_num_threads(1)
    ids, vocab = corpus()
    train_set = TensorDataset(*batch(ids[:27_000], config["context"], 64 * config["steps_per_epoch"], torch.Generator().manual_seed(0)))
    val_x, val_y = batch(ids[27_000:], config["context"], 512, torch.Generator().manual_seed(1))
    model = CharModule(vocab, config["context"], config["width"], config["lr"])
    collapse = CollapseCallback(metrics=["val/loss"], probe=val_x[:64])  # collapsetune
    trainer = L.Trainer(max_epochs=config["max_iterations"], callbacks=[collapse], logger=False,  # collapsetune (was: max_epochs=20)
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(train_set, batch_size=64, shuffle=True), DataLoader(TensorDataset(val_x, val_y), batch_size=512),
                ckpt_path=collapse.resume_path())  # collapsetune


if __name__ == "__main__":
    train({"lr": 3e-3, "context": 8, "width": 64, "steps_per_epoch": 60, "max_iterations": 3})
