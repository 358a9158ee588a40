"""The two-stage softmax epilogue kernel alone, in NCHW, at shapes that reach each of its kernels.

`softmax_epilogue` picks, per problem: the staged tile kernel writing owned sectors (fp32 rows
that do not start on a 32-byte sector), the staged kernel storing directly (the other staged
cases), or the streaming kernel (large C, small images, misaligned pointers). Each case below
names the kernel it reaches; each writes into a NaN-filled output and is compared with a float64
evaluation of the formula.
"""

from __future__ import annotations

import pytest
import torch

from _support import TOLERANCES

from fused_convt_full import _native

pytestmark = [pytest.mark.requires_cuda, pytest.mark.requires_native]

# id -> (N, C, H, W); the kernel each dtype reaches is in the id.
CASES = {
    "owned_sectors_fp32_several_tiles": (3, 37, 31, 29),  # HW = 899: odd, 5 tiles per image
    "one_tile_per_image": (4, 5, 10, 11),  # HW = 110
    "direct_sector_aligned_rows": (2, 20, 24, 24),  # HW * 4 bytes is a multiple of 32
    "single_channel": (3, 1, 15, 15),
    "reference_image_size": (2, 128, 129, 129),
    "streaming_large_c_fp32_staged_16bit": (2, 200, 13, 13),  # fp32 tile would exceed 113 KB
    "streaming_small_image": (5, 9, 7, 7),  # HW = 49, under half a tile
}
DTYPES = {"fp32_strict": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _reference(z: torch.Tensor, conv_b: torch.Tensor, b: torch.Tensor, s: float) -> torch.Tensor:
    logits = z.double() + conv_b.double().view(1, -1, 1, 1)
    return torch.sigmoid(s * (torch.softmax(logits, dim=1) + b.double().view(1, -1, 1, 1)))


def _run_epilogue(z: torch.Tensor, conv_b: torch.Tensor, b: torch.Tensor, s: float, y: torch.Tensor) -> None:
    C = _native.require()
    N, ch, H, W = z.shape
    stream = torch.cuda.current_stream().cuda_stream
    C.softmax_epilogue(_native.native_dtype(z.dtype), C.Layout.nchw, N, ch, H * W, z.data_ptr(), conv_b.data_ptr(),
                       b.data_ptr(), s, y.data_ptr(), stream)  # fmt: skip
    torch.cuda.synchronize()


def _check(y: torch.Tensor, ref: torch.Tensor, mode: str) -> None:
    assert not torch.isnan(y).any(), "an output element was left unwritten (NaN poison) or computed as NaN"
    err = (y.double() - ref).abs().max().item()
    assert err <= TOLERANCES[mode][1], f"max abs error {err:.3e} over tolerance {TOLERANCES[mode][1]:.0e}"


@pytest.mark.parametrize("mode", list(DTYPES))
@pytest.mark.parametrize("case", list(CASES))
def test_nchw_epilogue_matches_float64_formula(case, mode):
    N, ch, H, W = CASES[case]
    dtype = DTYPES[mode]
    z = (torch.randn(N, ch, H, W, device="cuda") * 3).to(dtype)
    conv_b, b = torch.randn(ch, device="cuda"), torch.randn(ch, device="cuda")
    s = 1.7
    y = torch.full_like(z, float("nan"))
    _run_epilogue(z, conv_b, b, s, y)
    _check(y, _reference(z, conv_b, b, s), mode)


@pytest.mark.parametrize("mode", list(DTYPES))
def test_nchw_epilogue_with_pointers_off_16_byte_alignment(mode):
    """z and y one element into their buffers: the staged kernels need 16-byte alignment, so the
    streaming kernel takes the problem."""
    N, ch, H, W = CASES["owned_sectors_fp32_several_tiles"]
    dtype = DTYPES[mode]
    numel = N * ch * H * W
    z = (torch.randn(numel + 1, device="cuda") * 3).to(dtype)[1:].view(N, ch, H, W)
    y = torch.full((numel + 1,), float("nan"), device="cuda", dtype=dtype)[1:].view(N, ch, H, W)
    assert z.data_ptr() % 16 != 0 and y.data_ptr() % 16 != 0
    conv_b, b = torch.randn(ch, device="cuda"), torch.randn(ch, device="cuda")
    _run_epilogue(z, conv_b, b, 0.9, y)
    _check(y, _reference(z, conv_b, b, 0.9), mode)


@pytest.mark.parametrize("mode", list(DTYPES))
@pytest.mark.parametrize("case", ["owned_sectors_fp32_several_tiles", "reference_image_size"])
def test_nchw_epilogue_in_place(case, mode):
    """y = z is allowed; fp32 then stores directly, since the owned-sector tile reads a halo the
    previous block may already have overwritten."""
    N, ch, H, W = CASES[case]
    dtype = DTYPES[mode]
    z = (torch.randn(N, ch, H, W, device="cuda") * 3).to(dtype)
    conv_b, b = torch.randn(ch, device="cuda"), torch.randn(ch, device="cuda")
    ref = _reference(z, conv_b, b, 1.3)
    _run_epilogue(z, conv_b, b, 1.3, z)
    _check(z, ref, mode)
