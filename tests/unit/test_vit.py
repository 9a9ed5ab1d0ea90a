"""SamViT: the fused relative-position attention against timm's own code path, and weight files in
SAM's, official FOCAL's and timm's layouts (timm's entry points and checkpoint filter)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from helpers.official import randomized, sam_layout
from focal_pl.extractors import SamViT
from focal_pl.extractors.sam_attention import FusedSamAttention, fold_rel_pos


def tiny(attention="fused", img_size=64, window_size=2, **kwargs) -> SamViT:
    return SamViT("tiny", img_size=img_size, out_dim=16, window_size=window_size, attention=attention, **kwargs)


def twins(**kwargs) -> tuple[SamViT, SamViT]:
    """The same weights behind timm's attention and the fused one."""
    reference = randomized(tiny("timm", **kwargs))
    fused = tiny("fused", **kwargs)
    fused.load_state_dict(reference.state_dict())
    return reference, fused


class SdpaCalls(TorchFunctionMode):
    """Records q, k, v and the mask of every ``scaled_dot_product_attention`` call."""

    def __init__(self):
        super().__init__()
        self.calls: list[dict] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            self.calls.append({"q": q.shape, "k": k.shape, "v": v.shape, "dtype": q.dtype,
                               "mask": kwargs.get("attn_mask", args[3] if len(args) > 3 else None)})
        return func(*args, **kwargs)


# (img_size, window_size, input side) -> token grid: 4 x 4 tiled by 2-windows; 5 x 5 padded to 6 x 6;
# 4 x 6 into a model built for 4 x 4 (3-windows pad the rows; the global blocks' column tables are
# interpolated 7 -> 11) and into one built for 6 x 6 (row tables interpolated 11 -> 7)
GRIDS = [(64, 2, (64, 64)), (80, 2, (80, 80)), (64, 3, (64, 96)), (96, 3, (64, 96))]


@pytest.mark.parametrize("img_size,window_size,side", GRIDS)
@pytest.mark.parametrize("grad_checkpointing", [False, True])
def test_fused_attention_equals_timm_outputs_and_gradients(img_size, window_size, side, grad_checkpointing):
    reference, fused = twins(img_size=img_size, window_size=window_size, grad_checkpointing=grad_checkpointing)
    assert sum(isinstance(m, FusedSamAttention) for m in fused.modules()) == 4  # 2 windowed + 2 global blocks
    assert not any(isinstance(m, FusedSamAttention) for m in reference.modules())
    images = torch.rand(2, 3, *side)
    expected, got = reference(images), fused(images)
    assert got.shape == expected.shape == (2, 16, side[0] // 16, side[1] // 16)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(expected)
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    mine = dict(fused.named_parameters())
    for name, p in reference.named_parameters():
        assert p.grad is not None and mine[name].grad is not None, name
        scale = p.grad.abs().max().clamp_min(1e-6)
        torch.testing.assert_close(mine[name].grad / scale, p.grad / scale, atol=1e-5, rtol=1e-4, msg=name)
    rel_pos_grads = [p.grad.abs().max() for n, p in reference.named_parameters() if "rel_pos" in n]
    assert len(rel_pos_grads) == 8 and min(rel_pos_grads) > 1e-4  # the positions matter in this test


def test_relative_positions_change_the_output():
    """The equality above is not trivial: zeroing the tables changes the features."""
    reference, fused = twins(window_size=3)
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        before = fused(images)
        for name, p in fused.named_parameters():
            if "rel_pos" in name:
                p.zero_()
        assert (fused(images) - before).abs().max() > 1e-2


def test_folded_scores_are_sam_scores():
    """q'.k' = scale q.k + Rh[row(q), row(k)].q + Rw[col(q), col(k)].q, widths padded to 8."""
    from timm.models.vision_transformer_sam import get_decomposed_rel_pos_bias

    batch, heads, height, width, dim = 2, 3, 3, 5, 12
    q, k, v = (torch.randn(batch, heads, height * width, dim, dtype=torch.float64) for _ in range(3))
    rel_h, rel_w = torch.randn(2 * height - 1, dim, dtype=torch.float64), torch.randn(2 * width - 1, dim,
                                                                                       dtype=torch.float64)
    q2, k2, v2 = fold_rel_pos(q, k, v, rel_h, rel_w, (height, width), dim**-0.5)
    assert q2.shape[-1] == k2.shape[-1] == v2.shape[-1] == 24  # 12 + 3 + 5 = 20 -> 24
    bias = get_decomposed_rel_pos_bias(q.flatten(0, 1), rel_h, rel_w, (height, width), (height, width))
    expected = dim**-0.5 * q @ k.transpose(-1, -2) + bias.view(batch, heads, height * width, height * width)
    torch.testing.assert_close(q2 @ k2.transpose(-1, -2), expected, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(v2[..., :dim], v)
    assert not v2[..., dim:].any()


def test_fused_attention_runs_in_bf16_under_autocast_and_stays_close_to_fp32():
    _, fused = twins(window_size=3)
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        exact = fused(images)
    spy = SdpaCalls()
    with spy, torch.autocast("cpu", dtype=torch.bfloat16):
        half = fused(images)
    half.float().square().mean().backward()
    assert len(spy.calls) == 4 and all(c["dtype"] == torch.bfloat16 for c in spy.calls)
    error = (half.float() - exact).abs().max() / exact.abs().max()
    assert error < 5e-2, f"bf16 features {error:.3f} off the fp32 ones (relative to their max)"
    assert all(torch.isfinite(p.grad).all() for p in fused.parameters())


def test_fused_attention_calls_are_flash_eligible_and_timm_calls_are_not():
    """What CUDA's flash kernel needs: 4-d q/k/v, no mask, one head dim, a multiple of 8, <= 256.
    timm's path hands SDPA 3-d tensors and a float mask, which leaves only the math kernel on CUDA."""
    reference, fused = twins(window_size=3)
    images = torch.rand(1, 3, 64, 96)
    for model, fused_calls in ((fused, True), (reference, False)):
        spy = SdpaCalls()
        with spy:
            model(images)
        assert len(spy.calls) == 4
        for call in spy.calls:
            eligible = (len(call["q"]) == 4 and call["mask"] is None and call["q"][-1] == call["k"][-1] == call["v"][-1]
                        and call["q"][-1] % 8 == 0 and call["q"][-1] <= 256)
            assert eligible == fused_calls, call
    with torch.nn.attention.sdpa_kernel([torch.nn.attention.SDPBackend.FLASH_ATTENTION]):
        fused(images).sum().backward()  # the CPU flash kernel takes the same calls


@pytest.mark.parametrize("size,widths", [("base", {96, 192}), ("large", {96, 192}), ("huge", {112, 208})])
def test_paper_sizes_stay_within_flash_head_dims(size, widths):
    """At 1024 px (64 x 64 tokens, 14-windows), head dim + H + W padded to 8: ViT-B/L 64 + 28 -> 96
    and 64 + 128 = 192, ViT-H 80 + 28 -> 112 and 80 + 128 = 208 (checked on the meta device)."""
    spy = SdpaCalls()
    with torch.device("meta"), spy:
        SamViT(size)(torch.empty(1, 3, 1024, 1024))
    assert {c["q"][-1] for c in spy.calls} == widths
    assert all(c["mask"] is None and c["q"][-1] == c["v"][-1] for c in spy.calls)


def test_attention_must_be_fused_or_timm():
    with pytest.raises(ValueError, match="attention must be one of"):
        tiny(attention="flash")


# --- weight files ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "layout",
    [
        pytest.param(lambda s: sam_layout(s), id="sam"),
        pytest.param(lambda s: sam_layout(s, "module.net.image_encoder."), id="official-focal"),
        pytest.param(lambda s: dict(s), id="timm"),
        pytest.param(lambda s: {"extractor.body." + k: v for k, v in s.items()}, id="focal-pl-lightning"),
    ],
)
def test_weight_layouts_load_into_a_tiny_model(tmp_path, layout):
    source = randomized(tiny())
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": layout(source.body.state_dict())}, path)
    target = tiny(weights=str(path))
    assert target.load_report is not None
    assert not target.load_report.missing and not target.load_report.mismatched
    assert not target.load_report.unexpected  # SAM's prompt encoder is dropped by timm's filter
    source.eval(), target.eval()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(images), target(images))


def test_timm_attention_loads_the_same_files(tmp_path):
    source = randomized(tiny())
    path = tmp_path / "sam.pth"
    torch.save(sam_layout(source.body.state_dict()), path)
    target = tiny("timm", weights=str(path))
    with torch.no_grad():
        torch.testing.assert_close(target(torch.ones(1, 3, 64, 64)), source(torch.ones(1, 3, 64, 64)),
                                   atol=1e-5, rtol=1e-5)


def test_wrong_weight_files_raise_or_report(tmp_path, caplog):
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.bias": torch.zeros(10)}, other)
    with pytest.raises(ValueError, match="no tensor of .*resnet.pth fits VisionTransformerSAM"):
        tiny(weights=str(other))
    wider = tmp_path / "wider.pth"  # another out_dim: the blocks fit, the neck does not
    torch.save(sam_layout(SamViT("tiny", img_size=64, out_dim=32, window_size=2).body.state_dict()), wider)
    partial = tiny(weights=str(wider))
    assert partial.load_report.mismatched and all(m.startswith("neck.") for m in partial.load_report.mismatched)
    assert "shape-mismatched" in caplog.text and "wider.pth" in caplog.text
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        tiny(weights=str(tmp_path / "absent.pth"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("backend", ["FLASH_ATTENTION", "EFFICIENT_ATTENTION"])
def test_fused_attention_on_cuda_uses_fused_kernels_and_matches_timm(backend):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    reference, fused = twins(img_size=256, window_size=14)
    reference, fused = reference.cuda(), fused.cuda()
    images = torch.rand(2, 3, 256, 256, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        expected = reference(images).float()
        with sdpa_kernel([getattr(SDPBackend, backend)]):  # no math fallback: raises if not fused
            got = fused(images)
            got.float().square().mean().backward()
    error = (got.float() - expected).abs().max() / expected.abs().max()
    assert error < 5e-2
    assert all(torch.isfinite(p.grad).all() for p in fused.parameters())


@pytest.mark.slow
def test_fused_attention_compiles_in_one_graph():
    """torch.compile(fullgraph=True) takes the fused path whole (about a minute on 2 cores, cold)."""
    reference, fused = twins(window_size=3)
    compiled = torch.compile(fused, fullgraph=True)
    images = torch.rand(2, 3, 64, 96)
    got, expected = compiled(images), reference(images)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    got.sum().backward()
    expected.sum().backward()
    table = "body.blocks.1.attn.rel_pos_h"  # a global block's, through the folded dot product
    torch.testing.assert_close(dict(fused.named_parameters())[table].grad,
                               dict(reference.named_parameters())[table].grad, atol=1e-5, rtol=1e-4)
