"""Byte-level language modeling (256 symbols) with a decoder-only transformer.

Default data: the embedded corpus (Python standard library sources), so it runs offline.
Loss is in nats per byte; bpc (bits per byte) = loss / ln 2.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lion_bench.runs.errors import BadInput
from lion_bench.tasks.base import Batch, MemoryNeed, Task
from lion_bench.tasks.corpus import (
    corpus_digest,
    corpus_files,
    corpus_size,
    embedded_corpus,
    fingerprint,
    interleaved_split,
    local_corpus,
    split_sizes,
    stdlib_files,
)
from lion_bench.tasks.datasets_text import cached_dataset_text

# Bytes of the embedded corpus read when task.data.max_bytes is null.
EMBEDDED_BYTES = 4_000_000
from lion_bench.tasks.transformer import ByteTransformer, transformer_counts


class ByteLMTask(Task):
    """Shared machinery of byte-level LM tasks: random training windows, fixed eval windows."""

    unit = "tokens"
    # The held-out test split, for tasks that have one (set by ``load_splits``).
    test_data: Tensor | None = None

    def __init__(self, cfg, **kwargs):
        super().__init__(cfg, **kwargs)
        self.seq_len = int(cfg.model.seq_len)
        train, val, self.source = self.load_splits()
        self.check_windows(len(train), len(val), self.seq_len)
        self.train_data = torch.frombuffer(bytearray(train), dtype=torch.uint8)
        self.val_data = torch.frombuffer(bytearray(val), dtype=torch.uint8)
        self.fingerprint = self.data_fingerprint(train, val)
        # Uploaded once (bytes: 100 MB for enwik8); training windows are gathered on the device.
        self.train_data_on_device = self.train_data.to(self.device)
        self.window_offsets = {self.device: torch.arange(self.seq_len + 1, device=self.device)}
        self._device_splits: dict[int, tuple[Tensor, Tensor]] = {}  # id(host split) -> (it, its device copy)
        num_windows = int(cfg.eval.num_windows)
        last_start = len(self.val_data) - self.seq_len - 1
        # Fixed, evenly spaced validation windows: the same bytes every evaluation.
        self.val_starts = torch.linspace(0, last_start, min(num_windows, last_start + 1)).long()
        self.final_mode(), self.eval_stride()  # bad settings fail now, not after training

    @classmethod
    def check_windows(cls, num_train: int, num_val: int, seq_len: int) -> None:
        if num_train <= seq_len + 1 or num_val <= seq_len + 1:
            raise BadInput(
                f"{cls.name}: the data ({num_train} train / {num_val} val bytes) is too small for windows of "
                f"task.model.seq_len={seq_len}; use more data (task.data.max_bytes) or a smaller task.model.seq_len"
            )

    @classmethod
    def estimate_memory(cls, cfg, batch_size: int) -> MemoryNeed:
        """The model's parameters and what its tokens keep (``model_counts``); the data twice (the
        bytes read and their split are both held while the splits are made)."""
        params, per_token = cls.model_counts(cfg["model"])
        return MemoryNeed(params, batch_size * int(cfg["model"]["seq_len"]) * per_token, 2 * cls.data_size(cfg))

    @classmethod
    def model_counts(cls, model) -> tuple[int, int]:
        """(parameters, values each token keeps for the backward pass, at least)."""
        return transformer_counts(seq_len=int(model["seq_len"]), d_model=int(model["d_model"]),
                                  n_layer=int(model["n_layer"]))

    @classmethod
    def data_size(cls, cfg) -> int:
        """Bytes of data the task reads (from the config and file sizes, nothing read)."""
        return 0

    @abstractmethod
    def load_splits(self) -> tuple[bytes, bytes, str]:
        """(train bytes, validation bytes, a description of the source)."""

    def data_fingerprint(self, train: bytes, val: bytes) -> str:
        return fingerprint(train + val)

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        model = self.cfg.model
        return ByteTransformer(
            seq_len=self.seq_len,
            d_model=int(model.d_model),
            n_layer=int(model.n_layer),
            n_head=int(model.n_head),
            dropout=float(model.get("dropout", 0.0)),
        )

    def _windows(self, data: Tensor, starts: Tensor) -> Batch:
        """(inputs, targets), each (len(starts), seq_len) int64, on ``data``'s device."""
        if data.device not in self.window_offsets:
            self.window_offsets[data.device] = torch.arange(self.seq_len + 1, device=data.device)
        offsets = starts[:, None] + self.window_offsets[data.device]
        windows = data[offsets].long()
        return windows[:, :-1], windows[:, 1:]

    def train_batch(self) -> Batch:
        high = len(self.train_data) - self.seq_len - 1
        starts = torch.randint(0, high + 1, (self.batch_size,), generator=self.generator)
        (starts,) = self.to_device((starts,))
        return self._windows(self.train_data_on_device, starts)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        inputs, targets = batch
        logits = model(inputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))

    def units_per_batch(self, batch: Batch) -> int:
        return batch[0].numel()

    def _split_on_device(self, data: Tensor) -> Tensor:
        """A held-out split (on the host) on the task's device, copied once: evaluations then gather
        their windows there, with no host gather and no copy per chunk."""
        if data.device == self.device:
            return data
        cached = self._device_splits.get(id(data))
        if cached is None or cached[0] is not data:
            cached = self._device_splits[id(data)] = (data, data.to(self.device))
        return cached[1]

    @torch.inference_mode()
    def _sum_loss(self, model: nn.Module, data: Tensor, starts: Tensor, first_scored: Tensor) -> tuple[float, int]:
        """Summed loss (nats) over each window's targets from position ``first_scored[i]`` on."""
        was_training = model.training
        model.eval()
        # Summed on the device and read once at the end: no host sync per chunk.
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        total_tokens = torch.zeros((), dtype=torch.int64, device=self.device)
        batch_size = int(self.cfg.eval.batch_size)
        positions = torch.arange(self.seq_len, device=self.device)
        data = self._split_on_device(data)
        # One copy of the window starts per evaluation; first_scored also stays on the host, where
        # "is every target of this chunk scored" is decided without a sync.
        starts_on_device, first_on_device = self.to_device((starts, first_scored))
        for chunk, first, first_here in zip(starts_on_device.split(batch_size), first_scored.split(batch_size),
                                            first_on_device.split(batch_size)):
            inputs, targets = self._windows(data, chunk)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                logits = model(inputs)
            # Per-target losses (batch, seq), classes along the contiguous last dimension (a transposed
            # (batch, classes, seq) input is several times slower).
            losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                     reduction="none").view(targets.shape)
            if bool((first == 0).all()):  # every target scored (first is on the host: no sync)
                total_loss += losses.sum()
                total_tokens += losses.numel()
            else:
                scored = positions >= first_here[:, None]
                total_loss += torch.where(scored, losses, 0.0).sum()
                total_tokens += scored.sum()
        model.train(was_training)
        loss, tokens = torch.stack([total_loss, total_tokens.to(torch.float64)]).tolist()  # one sync
        return loss, int(tokens)

    def evaluate_windows(self, model: nn.Module, data: Tensor, starts: Tensor) -> dict[str, float]:
        total_loss, total_tokens = self._sum_loss(model, data, starts, torch.zeros_like(starts))
        mean = total_loss / total_tokens
        return {"val_loss": mean, "val_bpc": mean / math.log(2)}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.evaluate_windows(model, self.val_data, self.val_starts)

    def full_split_windows(self, num_bytes: int, stride: int) -> tuple[Tensor, Tensor]:
        """Windows that score every byte of a split after its first exactly once.

        Window i reads bytes [s_i, s_i + seq_len) and predicts [s_i + 1, s_i + seq_len + 1); starts
        step by ``stride`` (plus one final window flush with the end), and each window scores only
        the targets no earlier window scored, so every scored byte after the first window sees at
        least ``seq_len - stride`` bytes of context. Returns (starts, first scored position).
        """
        last_start = num_bytes - self.seq_len - 1
        starts = torch.arange(0, last_start + 1, stride)
        if starts[-1] != last_start:
            starts = torch.cat([starts, torch.tensor([last_start])])
        scored_until = torch.cat([torch.tensor([1]), starts[:-1] + self.seq_len + 1])
        return starts, (scored_until - starts - 1).clamp(min=0)

    def evaluate_full(self, model: nn.Module, data: Tensor, split: str) -> dict[str, float]:
        """Loss and bpc over every byte of ``data`` (after the first): batched and deterministic.
        Keys ``<split>_loss``, ``<split>_bpc`` and ``<split>_bytes`` (the bytes scored)."""
        starts, first_scored = self.full_split_windows(len(data), self.eval_stride())
        total_loss, total_tokens = self._sum_loss(model, data, starts, first_scored)
        assert total_tokens == len(data) - 1, (total_tokens, len(data))
        mean = total_loss / total_tokens
        return {f"{split}_loss": mean, f"{split}_bpc": mean / math.log(2), f"{split}_bytes": total_tokens}

    def final_evaluate(self, model: nn.Module) -> dict[str, float]:
        """``task.eval.final``: sample (the fixed windows of ``evaluate``: nothing to add), full_valid
        (every validation byte: val_loss, val_bpc and val_bytes replace the sampled numbers), or
        full_test (every test byte, where the task has a test split: keys test_*)."""
        final = self.final_mode()
        if final == "full_valid":
            return self.evaluate_full(model, self.val_data, "val")
        if final == "full_test":
            return self.evaluate_full(model, self.test_data, "test")
        return {}  # sample: the fixed windows the loop evaluated at the last step

    def eval_stride(self) -> int:
        stride = int(self.cfg.eval.get("stride") or self.seq_len)
        if not 1 <= stride <= self.seq_len:
            raise BadInput(f"task.eval.stride must be in [1, seq_len={self.seq_len}], got {stride}")
        return stride

    def final_mode(self) -> str:
        final = self.cfg.eval.get("final") or "sample"
        valid = ("sample", "full_valid") + (("full_test",) if self.test_data is not None else ())
        if final not in valid:
            raise BadInput(f"{self.name}: task.eval.final={final!r} is not one of: {', '.join(valid)}")
        return final

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "sha256": self.fingerprint,
            "train_bytes": len(self.train_data),
            "val_bytes": len(self.val_data),
        }


class TextTask(ByteLMTask):
    """Byte LM on local text (``task.data.path``), the embedded standard-library corpus, or a text
    column of a Hugging Face dataset (``task.data.source=hf``, ``task.data.hf_*``)."""

    name = "text"
    description = "byte-level LM, a small decoder-only transformer; embedded corpus, local text or a datasets column"

    @staticmethod
    def corpus(cfg) -> tuple[str | None, int | None]:
        """(task.data.path or None for the embedded corpus, the cap on bytes read)."""
        data_cfg = cfg["data"]
        path = data_cfg.get("path") or None
        max_bytes = data_cfg.get("max_bytes")
        max_bytes = int(max_bytes) if max_bytes is not None else None
        return path, max_bytes if path else (max_bytes or EMBEDDED_BYTES)

    @staticmethod
    def dataset(cfg) -> tuple[str, str | None, str, str, int | None] | None:
        """(hf_dataset, hf_config, hf_split, hf_column, max_bytes) with ``task.data.source=hf``, else None."""
        data_cfg = cfg["data"]
        if (data_cfg.get("source") or "file") != "hf":
            return None
        if not data_cfg.get("hf_dataset"):
            raise BadInput("task.data.source=hf reads a Hugging Face dataset: set task.data.hf_dataset to a Hub id or "
                           "a local dataset directory (and task.data.hf_column, hf_split, hf_config as it needs)")
        if data_cfg.get("path"):
            raise BadInput("task.data.path and task.data.source=hf both name the data; set task.data.path=null or "
                           "task.data.source=file")
        max_bytes = data_cfg.get("max_bytes")
        return (str(data_cfg["hf_dataset"]), data_cfg.get("hf_config"), data_cfg.get("hf_split") or "train",
                data_cfg.get("hf_column") or "text", int(max_bytes) if max_bytes is not None else None)

    @classmethod
    def check_data(cls, cfg) -> None:
        dataset = cls.dataset(cfg)
        if dataset:  # a dataset's size is known once it is read: read here (once per process) to check it
            size = len(cached_dataset_text(*dataset)[0])
        else:
            path, max_bytes = cls.corpus(cfg)
            size = corpus_size(corpus_files(path) if path else stdlib_files(), max_bytes)
            if size == 0:
                raise BadInput(f"task.data.path={path!r} holds no bytes; point it at a non-empty file or directory")
        data_cfg = cfg["data"]
        num_train, num_val = split_sizes(size, float(data_cfg["val_fraction"]), int(data_cfg.get("block_bytes", 65536)))
        cls.check_windows(num_train, num_val, int(cfg["model"]["seq_len"]))

    @classmethod
    def data_identity(cls, cfg) -> str:
        dataset = cls.dataset(cfg)
        if dataset:
            return f"sha256:{cached_dataset_text(*dataset)[2]}"
        return f"sha256:{corpus_digest(*cls.corpus(cfg))}"

    @classmethod
    def data_size(cls, cfg) -> int:
        if (cfg["data"].get("source") or "file") != "file":
            return 0  # a dataset's size is known once it is read: not counted
        path, max_bytes = cls.corpus(cfg)
        return corpus_size(corpus_files(path) if path else stdlib_files(), max_bytes)

    def load_splits(self) -> tuple[bytes, bytes, str]:
        data_cfg = self.cfg.data
        dataset = self.dataset(self.cfg)
        if dataset:
            data, source, _ = cached_dataset_text(*dataset)
        else:
            path, max_bytes = self.corpus(self.cfg)
            data, source = local_corpus(path, max_bytes) if path else embedded_corpus(max_bytes)
        train, val = interleaved_split(data, float(data_cfg.val_fraction), int(data_cfg.get("block_bytes", 65536)))
        return train, val, source

    def describe(self) -> dict:
        dataset = self.dataset(self.cfg)
        if dataset is None:
            return super().describe()
        names = ("hf_dataset", "hf_config", "hf_split", "hf_column")
        return {**super().describe(), **dict(zip(names, dataset[:4]))}
