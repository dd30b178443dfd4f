"""Probe: does the seed's captioner collapse on the synthetic sound-event set, and which fix helps?

Trains each setting with the real wrapper (one process, one thread), records every report,
then decodes the trained baseline again with the seed's decoding fixes (no retraining).
Results go to a JSON file; docs/audio_caption.md holds the table.

    python benchmarks/probe_audio_caption.py --out /tmp/probe.json            # ~20 min on 1 core
    python benchmarks/probe_audio_caption.py --reports 4 --only baseline fix  # quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.audio_caption import WEIGHTS_FILE, AudioCaption

BASELINE = {"pooling": "max", "audio_injection": "init", "attention": "none"}
SETTINGS = {
    "baseline": BASELINE,
    "fix": {"pooling": "time_preserving", "audio_injection": "every_step", "attention": "additive"},
    "every_step_only": {**BASELINE, "audio_injection": "every_step"},
    "time_preserving_only": {**BASELINE, "pooling": "time_preserving"},
    "training_fixes_only": {**BASELINE, "label_smoothing": 0.1, "scheduled_sampling": 0.3,
                            "ss_schedule": "inverse_sigmoid", "specaugment": True},
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
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results: dict[str, dict] = {}
    folder = Path(tempfile.mkdtemp(prefix="probe_audio_caption_"))
    for name in args.only:
        reports = args.baseline_reports if name == "baseline" else args.reports
        config = {**SETTINGS[name], "max_iterations": reports, "steps_per_report": args.steps_per_report,
                  "seed": args.seed}
        start = time.time()
        model = AudioCaption(config)
        history = []
        for r in range(reports):
            out = model.step()
            history.append({k: round(out[k], 4) for k in KEYS})
            print(name, r + 1, history[-1], flush=True)
        results[name] = {"config": config, "history": history, "seconds": round(time.time() - start, 1),
                         "samples": model.samples()}
        if name == "baseline":  # the seed's first priority: decode the trained model differently
            model.write_artifacts(str(folder))
            decoded = {}
            for dname, dcfg in DECODINGS.items():
                again = AudioCaption({**config, **dcfg, "train": False, "checkpoint": str(folder / WEIGHTS_FILE)})
                out = again.step()
                decoded[dname] = {k: round(out[k], 4) for k in KEYS}
                print("baseline checkpoint +", dname, decoded[dname], flush=True)
            results[name]["decoding_only"] = decoded
        Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
