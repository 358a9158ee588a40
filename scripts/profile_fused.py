"""One fused launch per (dtype, layout) on the reference problem shape with a
smaller batch, for Nsight Compute: ncu -k regex:FusedConvTranspose python3 scripts/profile_fused.py"""
import sys

import torch

sys.path.insert(0, "scripts")
from quick_bench import _C, DT, pad_to, problem  # noqa: E402


def main(N: int = 32) -> None:
    Cin, H, W, Cout, k, s, p, op = 64, 64, 64, 128, 4, 2, 1, 1
    Ho = (H - 1) * s - 2 * p + k + op
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(N, Cin, H, W, device="cuda", dtype=dtype)
        w = (torch.randn(Cin, Cout, k, k, device="cuda") / 16).to(dtype)
        cb, b = torch.randn(Cout, device="cuda"), torch.randn(Cout, device="cuda")
        xn = pad_to(x.permute(0, 2, 3, 1), 3, 8).contiguous()
        wp = pad_to(pad_to(w.permute(0, 2, 3, 1), 0, 8), 3, 8).contiguous()
        for layout in (_C.Layout.nchw, _C.Layout.nhwc):
            y = torch.empty(N, Cout, Ho, Ho, device="cuda", dtype=dtype)
            pr = problem(N, Cin, H, W, Cout, k, s, p, op, dtype, layout)
            _C.fused_forward(pr, xn.data_ptr(), wp.data_ptr(), cb.data_ptr(), b.data_ptr(), 2.0, y.data_ptr(),
                             torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
