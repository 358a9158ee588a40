"""Weight packing, the packed-weight cache (never stale, never keeps weights alive), input packing."""

from __future__ import annotations

import gc

import pytest
import torch

from fused_convt_full import PackedWeight, prepack
from fused_convt_full._validation import validate
from fused_convt_full.packing import cache_info, cached_pack, clear_cache, pack_input, pack_weights


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.mark.parametrize("cin,cout", [(8, 16), (5, 7), (1, 1), (9, 257)])
def test_pack_weights_layout_and_zero_padding(cin, cout):
    w = torch.randn(cin, cout, 3, 2)
    packed = pack_weights(w)
    cin_pad, cout_pad = -(-cin // 8) * 8, -(-cout // 8) * 8
    assert packed.shape == (cin_pad, 3, 2, cout_pad) and packed.is_contiguous()
    assert torch.equal(packed[:cin, :, :, :cout], w.permute(0, 2, 3, 1))
    assert packed[cin:].abs().sum() == 0 and packed[:, :, :, cout:].abs().sum() == 0


def test_pack_weights_returns_fresh_memory_without_grad():
    w = torch.randn(8, 8, 1, 1, requires_grad=True)  # permute(0,2,3,1) of this is already contiguous
    packed = pack_weights(w)
    assert packed.data_ptr() != w.data_ptr() and not packed.requires_grad


def test_cache_returns_the_same_packed_tensor_while_the_weight_is_unchanged():
    w = torch.randn(5, 7, 3, 3)
    first = cached_pack(w)
    assert cached_pack(w) is first
    assert cache_info() == {"size": 1, "hits": 1, "misses": 1}


def test_cache_repacks_after_an_in_place_update():
    w = torch.randn(5, 7, 3, 3)
    first = cached_pack(w)
    w.mul_(2.0)  # bumps w._version
    second = cached_pack(w)
    assert second is not first
    assert torch.equal(second, pack_weights(w))


def test_cache_repacks_after_an_optimizer_step():
    w = torch.nn.Parameter(torch.randn(5, 7, 3, 3))
    opt = torch.optim.SGD([w], lr=0.1)
    first = cached_pack(w).clone()
    w.grad = torch.ones_like(w)
    opt.step()
    assert not torch.equal(cached_pack(w), first)
    assert torch.equal(cached_pack(w), pack_weights(w))


def test_cache_repacks_when_the_storage_is_swapped():
    w = torch.nn.Parameter(torch.randn(5, 7, 3, 3))
    cached_pack(w)
    w.data = torch.randn(5, 7, 3, 3)  # new storage, same Python object
    assert torch.equal(cached_pack(w), pack_weights(w))


def test_cache_holds_weights_weakly_and_evicts_dead_ones():
    w = torch.randn(5, 7, 3, 3)
    cached_pack(w)
    assert cache_info()["size"] == 1
    del w
    gc.collect()
    assert cache_info()["size"] == 0


def test_cache_distinguishes_weights_with_equal_values():
    a = torch.randn(5, 7, 3, 3)
    b = a.clone()
    assert cached_pack(a) is not cached_pack(b)
    assert cache_info()["size"] == 2


def test_inference_tensors_are_packed_but_never_cached():
    with torch.inference_mode():
        w = torch.randn(5, 7, 3, 3)
        first = cached_pack(w)
        w.add_(1.0)  # no version counter: this change would be invisible to a cache
        second = cached_pack(w)
    assert torch.equal(second, pack_weights(w)) and not torch.equal(first, second)
    assert cache_info()["size"] == 0


def test_prepack_fills_the_cache_and_refreshes_after_in_place_updates():
    w = torch.randn(5, 7, 3, 3)
    pw = prepack(w)
    assert isinstance(pw, PackedWeight)
    assert pw.source is w and pw.shape == (5, 7, 3, 3) and pw.dtype == w.dtype and pw.device == w.device
    assert pw.version == w._version and not pw.is_stale()
    assert cached_pack(w) is pw.packed  # the op finds prepack's tensor through the cache
    old = pw.packed
    with torch.no_grad():
        w.add_(1.0)
    assert pw.is_stale()
    assert pw.packed is not old and torch.equal(pw.packed, pack_weights(w))
    assert not pw.is_stale() and pw.version == w._version


def test_prepack_rejects_non_weights():
    with pytest.raises(TypeError, match="w must be a torch.Tensor"):
        prepack([1, 2])
    with pytest.raises(ValueError, match="w must be 4-D"):
        prepack(torch.randn(3, 3))


def _args_for(x):
    w = torch.randn(x.shape[1], 4, 3, 3, dtype=x.dtype, device=x.device)
    return validate(x, w, None, torch.randn(4, dtype=x.dtype, device=x.device))


def test_pack_input_is_zero_copy_for_aligned_channels_last_input():
    x = torch.randn(2, 16, 5, 6).contiguous(memory_format=torch.channels_last)
    packed = pack_input(x, _args_for(x))
    assert packed.data_ptr() == x.data_ptr()
    assert packed.shape == (2, 5, 6, 16) and packed.is_contiguous()


@pytest.mark.parametrize("cin,channels_last", [(16, False), (5, True), (5, False)])
def test_pack_input_copies_into_a_zero_padded_nhwc_buffer(cin, channels_last):
    x = torch.randn(2, cin, 5, 6)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    packed = pack_input(x, _args_for(x))
    cin_pad = -(-cin // 8) * 8
    assert packed.shape == (2, 5, 6, cin_pad) and packed.is_contiguous()
    assert packed.data_ptr() != x.data_ptr()
    assert torch.equal(packed[..., :cin], x.permute(0, 2, 3, 1))
    assert packed[..., cin:].abs().sum() == 0


def test_pack_input_copies_a_misaligned_view():
    base = torch.randn(2 * 16 * 5 * 6 + 1)
    x = base[1:].view(2, 5, 6, 16).permute(0, 3, 1, 2)  # channels_last-contiguous, 4-byte offset
    assert x.is_contiguous(memory_format=torch.channels_last)
    packed = pack_input(x, _args_for(x))
    assert packed.data_ptr() % 16 == 0 and torch.equal(packed, x.permute(0, 2, 3, 1))


@pytest.mark.requires_cuda
@pytest.mark.requires_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "n,cin,h,w", [(2, 5, 9, 11), (3, 64, 16, 16), (1, 40, 1, 33), (2, 8, 7, 1), (2, 70, 10, 13), (1, 3, 4, 2)]
)
def test_pack_input_of_nchw_cuda_input_matches_permute_and_zero_pads(dtype, n, cin, h, w):
    x = torch.randn(n, cin, h, w, device="cuda").to(dtype)
    args = _args_for(x)
    cin_pad = -(-cin // 8) * 8
    # Poison the allocator's next block so the padding must really be written.
    torch.full((n, h, w, cin_pad), float("nan"), device="cuda", dtype=dtype)
    packed = pack_input(x, args)
    torch.cuda.synchronize()
    assert packed.shape == (n, h, w, cin_pad) and packed.is_contiguous()
    assert torch.equal(packed[..., :cin], x.permute(0, 2, 3, 1))
    assert packed[..., cin:].float().abs().sum().item() == 0
