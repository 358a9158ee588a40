"""Kernel-level check and timing through the native module only (no package
logic): the fused kernel in both layouts vs cuDNN + the two-stage epilogue, on
the reference problem. Used while developing the kernel; the product benchmark
is `python -m fused_convt_full.bench`."""
import sys

import torch
import torch.nn.functional as F
import triton.testing

try:
    from fused_convt_full import _C
except ImportError:  # a bare CMake build dir on PYTHONPATH
    import _C

DT = {torch.float32: _C.DType.float32, torch.float16: _C.DType.float16, torch.bfloat16: _C.DType.bfloat16}


def problem(N, Cin, H, W, Cout, k, s, p, op, dtype, layout):
    pr = _C.Problem()
    pr.N, pr.Cin, pr.H, pr.W, pr.Cout, pr.kH, pr.kW = N, Cin, H, W, Cout, k, k
    pr.stride_h = pr.stride_w = s
    pr.pad_h = pr.pad_w = p
    pr.out_pad_h = pr.out_pad_w = op
    pr.dtype, pr.out_layout = DT[dtype], layout
    return pr


def pad_to(t, dim, m):
    n = t.shape[dim]
    r = (n + m - 1) // m * m
    if r == n:
        return t
    shape = list(t.shape)
    shape[dim] = r - n
    return torch.cat([t, t.new_zeros(shape)], dim)


def run(N=128, Cin=64, H=64, W=64, Cout=128, k=4, s=2, p=1, op=1, dtype=torch.float32, check_n=4):
    torch.manual_seed(0)
    dev = "cuda"
    x = torch.randn(N, Cin, H, W, device=dev, dtype=dtype)
    w = (torch.randn(Cin, Cout, k, k, device=dev) / (Cin * k * k / 16) ** 0.5).to(dtype)
    cb = torch.randn(Cout, device=dev)
    b = torch.randn(Cout, device=dev)
    sc = 2.0
    Ho = (H - 1) * s - 2 * p + k + op
    x_nhwc = pad_to(x.permute(0, 2, 3, 1), 3, 8).contiguous()
    w_packed = pad_to(pad_to(w.permute(0, 2, 3, 1), 0, 8), 3, 8).contiguous()
    stream = torch.cuda.current_stream().cuda_stream
    results = {}
    tag = {torch.float32: "tf32", torch.float16: "f16", torch.bfloat16: "bf16"}[dtype]
    names = [""] + [v for v in _C.fused_variants() if f"_{tag}_" in v and ("x128x" in v)]
    for variant, layout, mf in [(v, l, m) for v in names for l, m in ((_C.Layout.nchw, torch.contiguous_format), (_C.Layout.nhwc, torch.channels_last))]:
        pr = problem(N, Cin, H, W, Cout, k, s, p, op, dtype, layout)
        ok, reason, name = _C.fused_support(pr)
        name = variant or "default:" + name
        y = torch.full((N, Cout, Ho, Ho), float("nan"), device=dev, dtype=dtype).contiguous(memory_format=mf)
        fn = lambda: _C.fused_forward_variant(variant, pr, x_nhwc.data_ptr(), w_packed.data_ptr(), cb.data_ptr(), b.data_ptr(), sc, y.data_ptr(), stream)
        try:
            fn()
        except RuntimeError as e:  # the variant declines this problem
            print(f"{str(dtype):15s} fused {layout.name:5s} {name} declined: {e}", flush=True)
            continue
        torch.cuda.synchronize()
        xs = x[:check_n].double()
        z = F.conv_transpose2d(xs, w.double(), cb.double(), stride=s, padding=p, output_padding=op)
        ref = torch.sigmoid(sc * (torch.softmax(z, 1) + b.double().view(1, -1, 1, 1)))
        err = (y[:check_n].double() - ref).abs().max().item()
        nan = torch.isnan(y).any().item()
        ms = triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median")
        results[f"fused_{name}_{layout.name}"] = ms
        print(f"{str(dtype):15s} fused {layout.name:5s} {name} max_err={err:.2e} nan={nan} {ms:.3f} ms", flush=True)
    pr = problem(N, Cin, H, W, Cout, k, s, p, op, dtype, _C.Layout.nhwc)
    y_plain = torch.empty(N, Ho, Ho, w_packed.shape[3], device=dev, dtype=dtype)
    plain = lambda: _C.plain_dgrad_forward(pr, x_nhwc.data_ptr(), w_packed.data_ptr(), y_plain.data_ptr(), stream)
    plain()
    torch.cuda.synchronize()
    zc = F.conv_transpose2d(x[:check_n].float(), w.float(), None, stride=s, padding=p, output_padding=op)
    perr = (y_plain[:check_n].permute(0, 3, 1, 2)[:, :Cout].float() - zc).abs().max().item()
    results["plain_dgrad_nhwc"] = ms = triton.testing.do_bench(plain, warmup=50, rep=300, return_mode="median")
    print(f"{str(dtype):15s} plain CUTLASS dgrad epilogue (NHWC, same bytes) {ms:.3f} ms  max_err={perr:.2e}", flush=True)
    del y_plain
    for mf, lname in () if FUSED_ONLY else ((torch.contiguous_format, "nchw"), (torch.channels_last, "nhwc")):
        xm = x.contiguous(memory_format=mf)
        conv = lambda: F.conv_transpose2d(xm, w, None, stride=s, padding=p, output_padding=op)
        z = conv()
        y2 = torch.empty_like(z)
        lay = _C.Layout.nchw if lname == "nchw" else _C.Layout.nhwc
        epi = lambda: _C.softmax_epilogue(DT[dtype], lay, N, Cout, Ho * Ho, z.data_ptr(), cb.data_ptr(), b.data_ptr(), sc, y2.data_ptr(), stream)
        epi_naive = lambda: _C.softmax_epilogue_naive(DT[dtype], lay, N, Cout, Ho * Ho, z.data_ptr(), cb.data_ptr(), b.data_ptr(), sc, y2.data_ptr(), stream)
        eager = lambda: torch.sigmoid(sc * (torch.softmax(F.conv_transpose2d(xm, w, cb.to(dtype), stride=s, padding=p, output_padding=op), 1) + b.to(dtype).view(1, -1, 1, 1)))
        cbd, bd = cb.to(dtype).view(1, -1, 1, 1), b.to(dtype).view(1, -1, 1, 1)
        inductor_epi = torch.compile(lambda zz: torch.sigmoid(sc * (torch.softmax(zz + cbd, 1) + bd)))
        inductor_epi(z)
        fns = [("cudnn_conv", conv), ("epilogue", epi), ("epilogue_naive", epi_naive), ("inductor_epilogue", lambda: inductor_epi(z)), ("eager", eager)]
        if COMPILE_MODEL:
            model = torch.compile(lambda xx: torch.sigmoid(sc * (torch.softmax(F.conv_transpose2d(xx, w, cb.to(dtype), stride=s, padding=p, output_padding=op), 1) + bd)))
            model(xm)
            fns.append(("torch_compile_model", lambda: model(xm)))
        t = {n: triton.testing.do_bench(f, warmup=20, rep=200, return_mode="median") for n, f in fns}
        print(f"{str(dtype):15s} {lname}: " + "  ".join(f"{k}={v:.3f}ms" for k, v in t.items()), flush=True)
        results.update({f"{k}_{lname}": v for k, v in t.items()})
        del z, y2
    y = torch.empty(N, Cout, Ho, Ho, device=dev, dtype=dtype)
    print(f"{str(dtype):15s} fill(write floor)={triton.testing.do_bench(lambda: y.fill_(0.5), return_mode='median'):.3f} ms")
    return results


COMPILE_MODEL = "--compile" in sys.argv
FUSED_ONLY = "--fused-only" in sys.argv  # skip the cuDNN / epilogue / eager timings

if __name__ == "__main__":
    sys.argv = [a for a in sys.argv if a not in ("--compile", "--fused-only")]
    for dt in sys.argv[1:] or ["float32", "bfloat16"]:
        run(dtype=getattr(torch, dt))
