"""Extractors: output shapes, the paper's sizes, and weights from local files in foreign layouts
(the SAM ViT's attention and weight layouts: tests/test_vit.py)."""

from __future__ import annotations

import pytest
import torch

from focal_pl.extractors import ForensicCNN, HRNet, MiT, SamViT, TimmBackbone, load_weights


def tiny_vit() -> SamViT:
    return SamViT("tiny", img_size=64, out_dim=16, window_size=2)


@pytest.mark.parametrize(
    "make,side,expected",
    [
        (tiny_vit, 64, (2, 16, 4, 4)),
        (lambda: HRNet("w18_small"), 64, (2, 16, 16, 16)),
        (lambda: HRNet("w18_small", out_dim=8), 64, (2, 8, 16, 16)),
        (lambda: TimmBackbone("resnet18", stride=4, out_dim=12), 64, (2, 12, 16, 16)),
        (lambda: TimmBackbone("resnet18", stride=16, out_dim=12), 64, (2, 12, 4, 4)),
        (lambda: ForensicCNN(width=8, depth=5, out_dim=6, stride=4), 32, (2, 6, 8, 8)),
        (lambda: TimmBackbone("convnext_atto", stride=4, out_dim=12, decoder_dim=16), 64, (2, 12, 16, 16)),
        (lambda: MiT("b0", out_dim=12, decoder_dim=16), 64, (2, 12, 16, 16)),
    ],
)
def test_extractors_map_images_to_feature_grids(make, side, expected):
    model = make()
    features = model(torch.rand(2, 3, side, side))
    assert tuple(features.shape) == expected
    features.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    "make,params,shape",
    [
        (lambda: SamViT("large"), 308_278_272, (1, 256, 64, 64)),  # the paper's extractor
        (lambda: HRNet("w32"), 28_535_552, (1, 32, 256, 256)),  # pose HRNet-W32: 32 x 256 x 256
    ],
)
def test_paper_extractors_have_the_paper_sizes(make, params, shape):
    with torch.device("meta"):
        model = make()
        out = model(torch.empty(1, 3, 1024, 1024))
    assert sum(p.numel() for p in model.parameters()) == params
    assert tuple(out.shape) == shape


@pytest.mark.parametrize("name", ["convnext_atto", "pvt_v2_b0", "resnet18"])
def test_timm_backbones_are_whole_networks_not_stems(name):
    """Every layer of the timm model but its classifier head is in the extractor, each feature level
    feeds the decoder (so each gets a gradient), and the parameter count says so."""
    import timm

    extractor = TimmBackbone(name, stride=4, out_dim=8, decoder_dim=8)
    whole = sum(p.numel() for p in timm.create_model(name, num_classes=0).parameters())
    body = sum(p.numel() for p in extractor.body.parameters())
    assert body >= 0.9 * whole and extractor.parameter_count() > body  # the decoder on top
    assert len(extractor.decoder.project) == len(extractor.body.feature_info.channels()) >= 4
    extractor(torch.rand(1, 3, 64, 64)).square().mean().backward()
    deepest = list(extractor.body.parameters())[-1]
    assert deepest.grad is not None and deepest.grad.abs().sum() > 0  # the last stage learns too


def test_mit_is_segformers_encoder_whole():
    from segmentation_models_pytorch.encoders import get_encoder

    extractor = MiT("b2", out_dim=256)
    assert sum(p.numel() for p in extractor.encoder.parameters()) == \
        sum(p.numel() for p in get_encoder("mit_b2", weights=None).parameters()) == 24_196_288
    with pytest.raises(ValueError, match="variant must be one of"):
        MiT("b9")


def test_timm_backbone_names_the_strides_it_has():
    with pytest.raises(ValueError, match=r"strides \[2, 4, 8, 16, 32\], not 3"):
        TimmBackbone("resnet18", stride=3)


def _outputs_equal(a, b, side=64):
    a.eval(), b.eval()
    x = torch.rand(1, 3, side, side)
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_lightning_checkpoint_and_safetensors_load(tmp_path):
    from safetensors.torch import save_file

    source = HRNet("w18_small")
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": {"extractor." + k: v for k, v in source.state_dict().items()},
                "epoch": 3}, ckpt)
    assert _outputs_equal(source, HRNet("w18_small", weights=str(ckpt)))
    st = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.body.state_dict().items()}, str(st))
    assert _outputs_equal(source, HRNet("w18_small", weights=str(st)))


def test_load_report_lists_missing_unexpected_and_mismatched_keys(tmp_path, caplog):
    model = ForensicCNN(width=8, depth=5, out_dim=6)
    state = dict(model.state_dict())
    dropped = "net.0.weight"
    head_bias = list(state)[-1]  # the 1x1 head's bias, given the wrong shape
    state[head_bias] = torch.zeros(99)
    state.pop(dropped)
    state["net.extra.weight"] = torch.zeros(2)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with caplog.at_level("WARNING"):
        report = load_weights(ForensicCNN(width=8, depth=5, out_dim=6), path)
    assert dropped in report.missing and head_bias in report.missing
    assert report.unexpected == ["net.extra.weight"]
    assert report.mismatched and report.mismatched[0].startswith(head_bias)
    assert "1 unexpected" in caplog.text and str(path) in caplog.text


def test_wrong_or_unsafe_weight_files_fail_naming_the_file(tmp_path):
    model = ForensicCNN(width=8, depth=5, out_dim=6)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_weights(model, tmp_path / "nowhere.pth")
    other = tmp_path / "other.pth"
    torch.save({"encoder.layer.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(ValueError, match="no tensor of .*other.pth fits ForensicCNN"):
        load_weights(model, other)
    pickled = tmp_path / "pickled.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "callback": ForensicCNN}, pickled)
    with pytest.raises(ValueError, match="pickled.pth is not a readable torch weights file"):
        load_weights(model, pickled)  # weights_only=True refuses arbitrary objects
