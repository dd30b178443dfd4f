"""MLflow glue (`collapsetune.tracking._callback` holds it while it is split by job)."""

from collapsetune.tracking._callback import *  # noqa: F403
from collapsetune.tracking._callback import (  # noqa: F401 (read by tests and benchmarks)
    ORPHAN_TAG, RENAMED_PREFIX, SAMPLE_MAX, SAMPLES_FILE, STOPPED_TAG, _batches, _connect, _Writer,
)
