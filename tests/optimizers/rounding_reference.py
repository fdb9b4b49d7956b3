"""Pure numpy/torch references for the fused kernel's random bits (imported by the tests as
``from rounding_reference import ...``): Philox4x32 and the kernel's map from elements to outputs."""

from __future__ import annotations

import numpy as np
import torch

BLOCK = 2048  # lion_triton._BLOCK
_MASK = np.uint64(0xFFFFFFFF)


def philox4x32(c0, c1, c2, c3, k0: int, k1: int, rounds: int = 10) -> list[np.ndarray]:
    """Philox4x32 (Salmon et al. 2011) on uint32 counters, written from the paper's round: the four
    output words as uint64 arrays holding 32-bit values. Products of two 32-bit words are exact in
    uint64."""
    c = [np.asarray(x, dtype=np.uint64) & _MASK for x in (c0, c1, c2, c3)]
    k0, k1 = np.uint64(k0), np.uint64(k1)
    multiplier_a, multiplier_b = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    for _ in range(rounds):
        product_a, product_b = multiplier_a * c[0], multiplier_b * c[2]
        c = [
            (product_b >> np.uint64(32)) ^ c[1] ^ k0,
            product_b & _MASK,
            (product_a >> np.uint64(32)) ^ c[3] ^ k1,
            product_a & _MASK,
        ]
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & _MASK, (k1 + np.uint64(0xBB67AE85)) & _MASK
    return c


def kernel_random_bits(numel: int, *, seed: int, step: int, stream: int, index: int) -> torch.Tensor:
    """The 16 random bits the kernel adds to each of a tensor's ``numel`` elements (int64).

    Element ``i`` lies in the block starting at ``s = i - i % BLOCK``, at row ``r`` and column ``j``
    of the block seen as (4, BLOCK / 4); it takes half ``j % 2`` of output ``r`` of Philox with
    counter ``(s / 8 + j // 2, index, stream, step)`` and key ``(seed low word, seed high word)``."""
    i = np.arange(numel, dtype=np.int64)
    start = i - i % BLOCK
    row, column = (i - start) // (BLOCK // 4), (i - start) % (BLOCK // 4)
    words = philox4x32(start // 8 + column // 2, index, stream, step, seed & 0xFFFFFFFF, seed >> 32)
    word = np.choose(row, words)
    bits = (word >> (16 * (column % 2)).astype(np.uint64)) & np.uint64(0xFFFF)
    return torch.from_numpy(bits.astype(np.int64))
