"""Image classification with a small CNN. Metric: validation cross-entropy (nats) and accuracy.

Data (``task.data.source``):
- ``digits`` (default, offline): scikit-learn's 1,797 handwritten digits, 8x8 grey, 10 classes
  (the UCI optical digits test set; it ships inside scikit-learn).
- ``cifar10`` (online the first time): the CIFAR-10 training split (50,000 32x32 colour images,
  10 classes) from the Hugging Face Hub through ``datasets`` (``pip install 'lion-bench[data]'``).

Either way a fixed ``task.data.val_fraction`` of the images (the same for every seed) is held out.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
from torch import Tensor, nn

from lion_bench.runs.errors import BadInput
from lion_bench.tasks.base import MemoryNeed
from lion_bench.tasks.supervised import ArrayTask, load_sklearn_dataset, split_train_val

IMAGE_SOURCES = ("digits", "cifar10")
CIFAR10_HUB_ID = "uoft-cs/cifar10"
# Per source: (images, channels, side of the square image); both have 10 classes.
IMAGE_SHAPES = {"digits": (1797, 1, 8), "cifar10": (50000, 3, 32)}
NUM_CLASSES = 10


def load_digits_images() -> tuple[Tensor, Tensor]:
    x, y = load_sklearn_dataset("digits")
    return x.view(-1, 1, 8, 8) / 16.0, y  # grey levels 0..16


def load_cifar10_images() -> tuple[Tensor, Tensor]:
    try:
        import datasets
    except ImportError as missing:
        raise BadInput(
            "task.data.source=cifar10 loads CIFAR-10 through Hugging Face datasets, which is not installed: "
            "pip install 'lion-bench[data]' (or pip install datasets). Offline, use task.data.source=digits."
        ) from missing
    try:
        train = datasets.load_dataset(CIFAR10_HUB_ID, split="train")
    except Exception as reason:  # noqa: BLE001 - datasets raises many kinds; all mean "could not get it"
        raise BadInput(
            f"could not load CIFAR-10 ({CIFAR10_HUB_ID}) from the Hugging Face Hub: {reason}\n"
            "It needs network access the first time (then it is cached under ~/.cache/huggingface). "
            "Offline, use task.data.source=digits."
        ) from reason
    images = np.stack([np.asarray(image.convert("RGB")) for image in train["img"]])  # (n, 32, 32, 3) uint8
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.as_tensor(train["label"], dtype=torch.int64)


class SmallCNN(nn.Module):
    """Stages of two 3x3 conv + ReLU and a 2x2 max-pool, then a 2x2 average pool and a linear head."""

    def __init__(self, in_channels: int, channels: list[int], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        for width in channels:
            layers += [
                nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(4 * in_channels, num_classes)

    def forward(self, images: Tensor) -> Tensor:  # (batch, channels, height, width) -> (batch, classes)
        return self.head(self.features(images))


class ImageTask(ArrayTask):
    name = "image"
    description = "image classification with a small CNN on scikit-learn digits or CIFAR-10"

    @classmethod
    def check_data(cls, cfg) -> None:
        source = cfg["data"]["source"]
        if source == "cifar10" and importlib.util.find_spec("datasets") is None:
            raise BadInput("task.data.source=cifar10 loads CIFAR-10 through Hugging Face datasets, which is not "
                           "installed: pip install 'lion-bench[data]'. Offline, use task.data.source=digits.")
        channels = list(cfg["model"]["channels"])
        side = IMAGE_SHAPES[source][2]
        most = side.bit_length() - 1  # each stage's max-pool halves the side; it must stay >= 1
        if len(channels) > most:
            raise BadInput(f"task.model.channels={channels} has {len(channels)} stages, but each halves the image and "
                           f"the {source} images are {side}x{side}: at most {most} stages "
                           f"(e.g. task.model.channels={channels[:most]})")

    @classmethod
    def estimate_memory(cls, cfg, batch_size: int) -> MemoryNeed:
        """Parameters of ``SmallCNN``; per image the input and each stage's two ReLU outputs (kept
        for the backward pass); the images as float32 tensors."""
        num_images, in_channels, side = IMAGE_SHAPES[cfg["data"]["source"]]
        params, values = 0, in_channels * side * side
        for width in (int(width) for width in cfg["model"]["channels"]):
            params += 9 * in_channels * width + width + 9 * width * width + width
            values += 2 * width * side * side
            in_channels, side = width, side // 2
        params += 4 * in_channels * NUM_CLASSES + NUM_CLASSES
        _, channels, full_side = IMAGE_SHAPES[cfg["data"]["source"]]
        return MemoryNeed(params, batch_size * values, num_images * channels * full_side**2 * 4)

    def load_data(self):
        data_cfg = self.cfg.data
        source = data_cfg.source
        if source == "digits":
            x, y = load_digits_images()
            description = "sklearn:load_digits"
        elif source == "cifar10":
            x, y = load_cifar10_images()
            description = f"hf:{CIFAR10_HUB_ID}:train"
        else:
            raise BadInput(f"unknown task.data.source {source!r}; valid: {', '.join(IMAGE_SOURCES)}")
        train_x, train_y, val_x, val_y = split_train_val(x, y, float(data_cfg.val_fraction), int(data_cfg.split_seed))
        # Normalize each channel with training statistics only.
        mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
        std = train_x.std(dim=(0, 2, 3), keepdim=True)
        return (train_x - mean) / std, train_y, (val_x - mean) / std, val_y, description

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        num_classes = int(torch.cat([self.train_y, self.val_y]).max()) + 1
        channels = [int(width) for width in self.cfg.model.channels]
        if not channels or min(channels) < 1:
            raise BadInput(f"task.model.channels must be a non-empty list of positive widths, got {channels}")
        return SmallCNN(self.train_x.shape[1], channels, num_classes)
