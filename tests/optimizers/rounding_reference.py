"""Pure-torch references for the fused kernel's random bits (imported by the tests as
``from rounding_reference import ...``): Philox4x32 and the kernel's map from elements to outputs."""

from __future__ import annotations

import torch

BLOCK = 2048  # lion_triton._BLOCK (test shapes only: the random bits do not depend on it)
PHILOX_ROUNDS = 7  # lion_triton._PHILOX_ROUNDS
_LOW32 = 0xFFFFFFFF


def _multiply_32(a: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high word, low word) of the 64-bit product of 32-bit ``a`` (int64 tensor) and ``b``, in
    int64 arithmetic: 16-bit limbs of ``a`` keep every partial product below 2**49."""
    partial_low, partial_high = (a & 0xFFFF) * b, (a >> 16) * b
    high = (partial_high + (partial_low >> 16)) >> 16
    low = (a * b) & _LOW32  # int64 wraps modulo 2**64, which keeps the low 32 bits exact
    return high, low


def philox4x32(c0, c1, c2, c3, k0: int, k1: int, rounds: int = 10) -> list[torch.Tensor]:
    """Philox4x32 (Salmon et al. 2011) on 32-bit counters, written from the paper's round: the four
    output words as int64 tensors holding 32-bit values."""
    c = [torch.as_tensor(x, dtype=torch.int64) & _LOW32 for x in (c0, c1, c2, c3)]
    c = [x.expand(torch.broadcast_shapes(*(y.shape for y in c))) for x in c]
    for _ in range(rounds):
        high_a, low_a = _multiply_32(c[0], 0xD2511F53)
        high_b, low_b = _multiply_32(c[2], 0xCD9E8D57)
        c = [high_b ^ c[1] ^ k0, low_b, high_a ^ c[3] ^ k1, low_a]
        k0, k1 = (k0 + 0x9E3779B9) & _LOW32, (k1 + 0xBB67AE85) & _LOW32
    return c


def kernel_random_bits(numel: int, *, seed: int, step: int, stream: int, index: int) -> torch.Tensor:
    """The 16 random bits the kernel adds to each of a tensor's ``numel`` elements (int64).

    Element ``i`` takes Philox4x32-7 with counter ``(i // 8, index, stream, step)`` and key ``(seed low
    word, seed high word)``: output word ``(i % 8) // 2``, its low half for even ``i`` and its high
    half for odd ``i``. So the 8 elements of a row use all 128 bits of one call, and the bits do not
    depend on how the kernel splits a tensor into blocks."""
    i = torch.arange(numel, dtype=torch.int64)
    words = torch.stack(philox4x32(i // 8, index, stream, step, seed & _LOW32, seed >> 32, rounds=PHILOX_ROUNDS))
    word = words.gather(0, ((i % 8) // 2)[None, :])[0]
    return (word >> (16 * (i % 2))) & 0xFFFF
