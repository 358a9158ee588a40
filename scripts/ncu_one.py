"""Run one fused variant once on the reference problem (smaller N) for Nsight
Compute: `ncu --kernel-name regex:fused_sm90 python3 scripts/ncu_one.py VARIANT
{nchw|nhwc} {float32|bfloat16} [N]`. Must run outside the repository root so
that the installed extension is imported."""
import sys

import torch

from fused_convt_full import _C

variant, layout, dtype = sys.argv[1], sys.argv[2], getattr(torch, sys.argv[3])
N = int(sys.argv[4]) if len(sys.argv) > 4 else 32
Cin, H, Cout, k, s, p, op = 64, 64, 128, 4, 2, 1, 1
Ho = (H - 1) * s - 2 * p + k + op
DT = {torch.float32: _C.DType.float32, torch.bfloat16: _C.DType.bfloat16}
pr = _C.Problem()
pr.N, pr.Cin, pr.H, pr.W, pr.Cout, pr.kH, pr.kW = N, Cin, H, H, Cout, k, k
pr.stride_h = pr.stride_w = s
pr.pad_h = pr.pad_w = p
pr.out_pad_h = pr.out_pad_w = op
pr.dtype = DT[dtype]
pr.out_layout = _C.Layout.nchw if layout == "nchw" else _C.Layout.nhwc
x = torch.randn(N, H, H, Cin, device="cuda", dtype=dtype)
w = torch.randn(Cin, k, k, Cout, device="cuda", dtype=dtype) * 0.05
cb, b = torch.randn(Cout, device="cuda"), torch.randn(Cout, device="cuda")
y = torch.empty(N * Cout * Ho * Ho, device="cuda", dtype=dtype)
stream = torch.cuda.current_stream().cuda_stream
for _ in range(2):
    _C.fused_forward_variant(variant, pr, x.data_ptr(), w.data_ptr(), cb.data_ptr(), b.data_ptr(), 2.0, y.data_ptr(), stream)
torch.cuda.synchronize()
print("ok", variant, layout, dtype)
