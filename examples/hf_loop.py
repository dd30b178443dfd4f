"""A Hugging Face Trainer script made a collapse-aware sweep: the lines marked
`# collapsetune` are all it took, 6 added or changed (tests/test_examples.py counts them).

    collapsetune run examples/hf_loop.yaml

A randomly initialised tiny GPT-2 (built from its configuration: nothing is downloaded)
learns the characters of `charlm.corpus()`. After every evaluation the callback reports
`val/loss` (the Trainer's `eval_loss`) and collapse metrics of greedy continuations of 8
probe prompts, with the Trainer's own checkpoint.
"""

from __future__ import annotations

import os
import tempfile

import torch
from charlm import corpus
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from collapsetune.integrations.transformers import CollapseCallback  # collapsetune


def chunks(ids: torch.Tensor, length: int) -> list[dict[str, torch.Tensor]]:
    return [{"input_ids": c, "labels": c} for c in ids[: len(ids) // length * length].view(-1, length)]


def train(config: dict) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    ids, vocab = corpus()
    torch.manual_seed(config.get("seed", 0))
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=64, n_embd=config["width"], n_layer=1, n_head=2,
                                       bos_token_id=0, eos_token_id=0))
    prompts = ids[27_000:27_064].view(8, 8)  # collapsetune: 8 probe prompts of 8 characters
    collapse = CollapseCallback(metrics={"val/loss": "eval_loss"}, probe={"input_ids": prompts, "attention_mask": torch.ones_like(prompts)})  # collapsetune
    with tempfile.TemporaryDirectory(prefix="hf-loop-") as output_dir:  # the Trainer's files, removed at the end
        args = TrainingArguments(output_dir=output_dir, learning_rate=config["lr"],
                                 num_train_epochs=config["max_iterations"],  # collapsetune (was: num_train_epochs=20)
                                 max_steps=-1, per_device_train_batch_size=16, eval_strategy="epoch", save_strategy="no",
                                 save_total_limit=1, logging_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True,
                                 seed=config.get("seed", 0))
        trainer = Trainer(model=model, args=args, train_dataset=chunks(ids[: 16 * 32 * config["steps_per_epoch"]], 32),
                          eval_dataset=chunks(ids[27_000:], 32), callbacks=[collapse])  # collapsetune
        trainer.train(resume_from_checkpoint=collapse.resume_path())  # collapsetune


if __name__ == "__main__":
    train({"lr": 3e-3, "width": 32, "steps_per_epoch": 20, "max_iterations": 3})
