"""Small forward calls for compute-sanitizer (memcheck, racecheck): every path,
both layouts, three shapes, one of them odd-sized. Exits non-zero on a wrong result."""
import torch

import fused_convt_full as fct

CASES = [  # N, Cin, Cout, H, W, k, stride, padding, output_padding
    (2, 16, 32, 8, 8, 4, 2, 1, 1),
    (1, 5, 7, 9, 11, 3, 2, 1, 1),
    (1, 24, 200, 5, 6, 3, 1, 1, 0),
]


def main() -> None:
    torch.manual_seed(0)
    for N, Cin, Cout, H, W, k, st, pad, op in CASES:
        for dtype in (torch.float32, torch.bfloat16):
            for channels_last in (False, True):
                x = torch.randn(N, Cin, H, W, device="cuda", dtype=dtype)
                if channels_last:
                    x = x.to(memory_format=torch.channels_last)
                w = torch.randn(Cin, Cout, k, k, device="cuda", dtype=dtype) / Cin**0.5
                cb = torch.randn(Cout, device="cuda", dtype=dtype)
                b = torch.randn(Cout, 1, 1, device="cuda", dtype=dtype)
                kw = dict(stride=st, padding=pad, output_padding=op)
                y = fct.forward(x, w, cb, b, 1.5, **kw)
                z = torch.nn.functional.conv_transpose2d(x.double(), w.double(), cb.double(), **kw)
                ref = torch.sigmoid(1.5 * (torch.softmax(z, 1) + b.double()))
                err = (y.double() - ref).abs().max().item()
                plan = fct.explain(x, w, cb, b, 1.5, **kw)
                print(f"{(N, Cin, Cout, H, W, k, st, pad, op)} {dtype} cl={channels_last} {plan.path} err={err:.2e}")
                assert err < 3e-2, err
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
