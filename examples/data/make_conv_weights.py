#!/usr/bin/env python3
"""Makes the bundled example tensor examples/data/conv_weights.npy.

A 3x3 convolution weight [64, 32, 3, 3] initialised as torch.nn.Conv2d does (Kaiming uniform),
then given per-output-channel gains drawn log-normally, as trained networks show after
BatchNorm folding: some channels are ten times wider than others, which is exactly where
per-tensor int8 loses accuracy and per-channel quantization wins.

Run: /usr/bin/python3 examples/data/make_conv_weights.py examples/data/conv_weights.npy
"""
import sys

import numpy as np
import torch

torch.manual_seed(0)
conv = torch.nn.Conv2d(32, 64, 3)
gains = torch.exp(torch.randn(64, 1, 1, 1) * 0.8)
w = (conv.weight.detach() * gains).numpy().astype(np.float32)
np.save(sys.argv[1], np.ascontiguousarray(w))
