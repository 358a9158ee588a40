"""fused_convt_full: conv_transpose2d -> softmax over channels -> + bias -> * scale -> sigmoid, in one CUDA kernel.

    y = sigmoid(s * (softmax_c(conv_transpose2d(x, w, conv_b, ...)) + b))

Public API: `forward`, `FusedConvTransposeSoftmax`, `prepack` / `PackedWeight`, `explain`
(which path a call takes and why) and `reference` (the PyTorch composite).
"""

from ._version import __version__
from .dispatch import Plan, explain
from .module import FusedConvTransposeSoftmax
from .ops import forward
from .packing import PackedWeight, prepack
from .reference import reference

__all__ = [
    "FusedConvTransposeSoftmax",
    "PackedWeight",
    "Plan",
    "__version__",
    "explain",
    "forward",
    "prepack",
    "reference",
]
