"""Without CUDA, Lion's Triton kernel runs through Triton's interpreter. The variable must be set
before the kernel module is imported (triton.jit reads it when decorating), so it is set here, at
collection, rather than in the test module."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
