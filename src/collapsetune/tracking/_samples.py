"""A trial's generated samples as its run's samples.md: one line a sample, a heading a report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from collapsetune.names import SAMPLES_FILE

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


SAMPLE_MAX = 400  # characters of one sample in samples.md; the rest is cut, with a count


def _samples_markdown(history: Sequence[tuple[int, list[str]]]) -> str:
    """samples.md: a heading per report and one line per sample under it, newest report last.
    MLflow's artifact viewer shows a .md file as numbered text lines, so a sample's own line
    breaks are written as ⏎ and a very long sample is cut: one sample is one line there too."""
    head = ("# Samples\n\nWhat the model generated at each report, newest last: one sample a line "
            "(a line break inside a sample is shown as ⏎; samples past "
            f"{SAMPLE_MAX} characters are cut). For the built-in LM: `prompt ||| continuation`.\n")
    body = "".join(f"\n## Report {step}\n\n" + "".join(f"- {record}\n" for record in records)
                   for step, records in history)
    return head + body


def sample_records(text: str) -> list[str]:
    """A wrapper's `samples()` text as one line per sample: samples are separated by lines that
    are exactly `---` when there are any (the built-in LM's form), else each line is one; inside
    a sample, line breaks become ⏎ and tabs spaces, and one past SAMPLE_MAX characters is cut.

    Example:
        >>> sample_records("a ||| the\\nthe\\n---\\nb ||| cat")
        ['a ||| the ⏎ the', 'b ||| cat']
    """
    lines = text.strip("\n").splitlines()
    if any(line.strip() == "---" for line in lines):
        chunks, current = [], []
        for line in lines + ["---"]:
            if line.strip() == "---":
                chunks.append("\n".join(current))
                current = []
            else:
                current.append(line)
    else:
        chunks = lines
    records = []
    for chunk in chunks:
        parts = [part.strip() for part in chunk.strip().replace("\t", " ").split("\n")]
        one = parts[0] + "".join(f" ⏎ {part}" if part else " ⏎" for part in parts[1:])
        one = "".join(c if c.isprintable() else " " for c in one)  # no control characters in a line
        if len(one) > SAMPLE_MAX:
            one = f"{one[:SAMPLE_MAX]}… (+{len(one) - SAMPLE_MAX} characters)"
        if one:
            records.append(one)
    return records


def _read_samples(client: MlflowClient, run_id: str) -> list[tuple[int, list[str]]]:
    """The samples a run already has (a resumed driver continues the file; one written before
    samples were one a line, with each report in a code block, is read too)."""
    try:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            text = Path(client.download_artifacts(run_id, SAMPLES_FILE, scratch)).read_text()
    except Exception:  # noqa: BLE001 - no file yet
        return []
    found = re.findall(r"\n## Report (\d+)\n\n```text\n(.*?)\n```\n", text, flags=re.S)
    if found:
        return [(int(step), sample_records(body)) for step, body in found]
    found = re.findall(r"\n## Report (\d+)\n\n((?:- .*\n)*)", text)
    return [(int(step), [line[2:] for line in body.splitlines()]) for step, body in found]
