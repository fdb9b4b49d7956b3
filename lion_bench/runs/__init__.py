"""The run-record layer, below the trainer: the record schema and its ``Status``, the local store
(atomic writes, validated readers), checkpoints, trial identity, ratio space and the environment a
run executed in. The trainer writes every record through it; sweeps and the report read through it.
Nothing here imports the trainer, sweeps or the report."""

from lion_bench.runs.errors import BadInput, RecordError
from lion_bench.runs.record import RunRecord, Status

__all__ = ["BadInput", "RecordError", "RunRecord", "Status"]
