"""Probe: does the seed's captioner collapse on a synthetic audio-caption set, and which fix helps?

Trains each setting with the real wrapper (one process, one thread), records every report,
then decodes the trained baseline again with the seed's decoding fixes (no retraining).
Results go to a JSON file; docs/audio_caption.md holds the tables.

    python benchmarks/probe_audio_caption.py --out /tmp/probe.json            # ~20 min on 1 core
    python benchmarks/probe_audio_caption.py --reports 4 --only baseline fix  # quick look
    # issue 14: the scene set, the benchmark's size, three seeds, a recipe variant
    python benchmarks/probe_audio_caption.py --dataset synthetic_scenes --clip-seconds 5 \
        --n-clips 500 --val-clips 100 --reports 8 --baseline-reports 8 --seeds 0 1 2 \
        --recipe p_wrong=0.3 --only baseline every_step_only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collapsetune.data import audio_scenes
from trainables.audio_caption import WEIGHTS_FILE, AudioCaption

BASELINE = {"pooling": "max", "audio_injection": "init", "attention": "none"}
SETTINGS = {
    "baseline": BASELINE,
    "fix": {"pooling": "time_preserving", "audio_injection": "every_step", "attention": "additive"},
    "every_step_only": {**BASELINE, "audio_injection": "every_step"},
    "time_preserving_only": {**BASELINE, "pooling": "time_preserving"},
    "training_fixes_only": {**BASELINE, "label_smoothing": 0.1, "scheduled_sampling": 0.3,
                            "ss_schedule": "inverse_sigmoid", "specaugment": True},
    "attention_only": {**BASELINE, "attention": "additive"},  # over max pooling's one frame
    "all_fixes": {"pooling": "time_preserving", "audio_injection": "every_step", "attention": "additive",
                  "label_smoothing": 0.1, "scheduled_sampling": 0.3, "ss_schedule": "inverse_sigmoid",
                  "specaugment": True},
}
DECODINGS = {
    "temperature_0.8": {"decoding": "temperature", "temperature": 0.8},
    "top_p_0.9": {"decoding": "top_p", "top_p": 0.9},
    "top_k_50_t0.8": {"decoding": "top_k", "top_k": 50, "temperature": 0.8},
    "beam_5": {"decoding": "beam", "beam_size": 5},
    "diverse_beam_8x4": {"decoding": "diverse_beam", "beam_size": 8, "beam_groups": 4, "diversity_penalty": 1.0},
}
KEYS = ("val/loss", "val/bleu4", "val/cider_d", "collapse/unique_captions", "collapse/top_caption_share",
        "collapse/distinct_2", "collapse/vocab_used")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="probe_audio_caption.json")
    parser.add_argument("--reports", type=int, default=12)
    parser.add_argument("--baseline-reports", type=int, default=20, help="longer: is its collapse transient?")
    parser.add_argument("--steps-per-report", type=int, default=50)
    parser.add_argument("--only", nargs="*", default=list(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (config.seed)")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--n-clips", type=int, default=1200)
    parser.add_argument("--val-clips", type=int, default=200)
    parser.add_argument("--clip-seconds", type=float, default=2.5)
    parser.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE",
                        help="synthetic_scenes only: a generator knob (audio_scenes.ScenesRecipe), e.g. p_wrong=0.3")
    parser.add_argument("--no-decoding", action="store_true", help="skip the decoding-only pass")
    args = parser.parse_args()
    if args.recipe:  # one process, no Ray: swapping the module's recipe reaches the loader
        import dataclasses

        knobs = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.recipe)}
        knobs = {k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()}
        audio_scenes.RECIPE = dataclasses.replace(audio_scenes.RECIPE, **knobs)
    data = {"dataset": args.dataset, "n_clips": args.n_clips, "val_clips": args.val_clips,
            "clip_seconds": args.clip_seconds}
    results: dict[str, dict] = {"_args": {**vars(args), "recipe_used": repr(audio_scenes.RECIPE)}}
    folder = Path(tempfile.mkdtemp(prefix="probe_audio_caption_"))
    for name, seed in ((n, s) for n in args.only for s in args.seeds):
        reports = args.baseline_reports if name == "baseline" else args.reports
        config = {**SETTINGS[name], **data, "max_iterations": reports, "steps_per_report": args.steps_per_report,
                  "seed": seed}
        start = time.time()
        model = AudioCaption(config)
        history = []
        for r in range(reports):
            out = model.step()
            history.append({k: round(out[k], 4) for k in KEYS})
            print(name, seed, r + 1, history[-1], flush=True)
        label = name if len(args.seeds) == 1 else f"{name}/seed{seed}"
        results[label] = {"config": config, "history": history, "seconds": round(time.time() - start, 1),
                          "samples": model.samples()}
        if name == "baseline" and not args.no_decoding:  # the seed's first priority: decode the trained model differently
            model.write_artifacts(str(folder))
            decoded = {}
            for dname, dcfg in DECODINGS.items():
                again = AudioCaption({**config, **dcfg, "train": False, "checkpoint": str(folder / WEIGHTS_FILE)})
                out = again.step()
                decoded[dname] = {k: round(out[k], 4) for k in KEYS}
                print("baseline checkpoint +", dname, decoded[dname], flush=True)
            results[label]["decoding_only"] = decoded
        Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
