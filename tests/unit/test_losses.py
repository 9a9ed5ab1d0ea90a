"""The losses against an independent reading of the spec, and their invariants."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import reference_focal as ref
from focal_pl.losses.targets import downsample_mask
from focal_pl.losses import (
    CircleLoss,
    DCLLoss,
    InfoNCELoss,
    NCELoss,
    SoftContrastiveLoss,
    TripletLoss,
    fcm_objective,
    soft_coefficients,
)

ALL_LOSSES = [
    SoftContrastiveLoss,
    lambda: SoftContrastiveLoss(coefficients="fcm"),
    lambda: SoftContrastiveLoss(soft=False),
    lambda: SoftContrastiveLoss(scope="batch"),
    InfoNCELoss,
    NCELoss,
    DCLLoss,
    TripletLoss,
    CircleLoss,
]


def random_case(seed: int, b: int = 2, c: int = 8, h: int = 6, w: int = 6, share: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    masks = (torch.rand(b, 1, h, w, generator=g) < share).double()
    masks[:, :, 0, 0] = 1.0  # both classes present in every image
    masks[:, :, -1, -1] = 0.0
    return features, masks


def unit(t: torch.Tensor) -> torch.Tensor:
    return F.normalize(t, dim=-1)


# ---------------------------------------------------------------- soft coefficients (section 1)


@pytest.mark.parametrize("m,rounds", [(2.0, 1), (2.0, 4), (1.5, 3), (3.0, 10)])
def test_soft_coefficients_match_reference(m, rounds):
    features, masks = random_case(1, b=1, c=16, h=8, w=8)
    f = unit(features[0].reshape(16, -1).T.float())
    y = masks[0, 0].flatten()
    w, c = soft_coefficients(f, y, fuzziness=m, max_iter=rounds, tol=1e-4)
    w_ref, c_ref = ref.soft_coefficients(ref.unit_rows(features[0].numpy()), y.numpy(), m, rounds)
    np.testing.assert_allclose(w.numpy(), w_ref, atol=2e-5)
    np.testing.assert_allclose(c.numpy(), c_ref, atol=2e-5)
    np.testing.assert_allclose(w.sum(0).numpy(), 1.0, atol=1e-6)


def test_objective_never_increases_over_rounds():
    g = torch.Generator().manual_seed(3)
    f = unit(torch.randn(500, 32, generator=g) + 0.8 * (torch.arange(500) < 150)[:, None].float())
    y = (torch.arange(500) < 150).float()
    y[140:170] = 1 - y[140:170]  # label noise at the "boundary"
    previous = float("inf")
    for rounds in range(1, 15):
        w, c = soft_coefficients(f, y, fuzziness=2.0, max_iter=rounds, tol=0.0)
        j = fcm_objective(f[None], w[None], c[None], 2.0).item()
        assert j <= previous + 1e-4 * abs(previous), (rounds, j, previous)
        previous = j
    # the hard start is the highest point: the rounds only ever lower J
    y2 = torch.stack((1 - y, y))
    hard = fcm_objective(f[None], y2[None], ref_centers(f, y2), 2.0).item()
    assert previous < hard


def ref_centers(f, w):
    return ((w @ f) / w.sum(-1, keepdim=True))[None]


def test_default_coefficients_do_not_collapse():
    """docs/method.md: 1000 unit features, 20% shifted by 2.0 along one direction, 256 dims."""
    g = torch.Generator().manual_seed(0)
    f = unit(torch.randn(1000, 256, generator=g))
    f[:200, 0] += 2.0
    f = unit(f)
    y = torch.zeros(1000)
    y[:200] = 1
    w, _ = soft_coefficients(f, y)  # defaults: m = 2, one round
    assert w[1, :200].mean() > 0.75  # forged pixels clearly forged
    assert w[0, 200:].mean() > 0.6  # pristine pixels lean pristine
    w10, _ = soft_coefficients(f, y, max_iter=10, tol=0.0)
    assert abs(w10[1, :200].mean().item() - 0.5) < 0.05  # the collapse the default avoids


def test_soft_coefficients_rejects_bad_arguments():
    f, y = torch.randn(10, 4), torch.zeros(10)
    with pytest.raises(ValueError, match="fuzziness"):
        soft_coefficients(f, y, fuzziness=1.0)
    with pytest.raises(ValueError, match="N x C"):
        soft_coefficients(f, torch.zeros(9))


# ---------------------------------------------------------------- SCL (section 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(soft=True, coefficients="within_class"),
        dict(soft=True, coefficients="fcm"),
        dict(soft=True, coefficients="fcm", fuzziness=1.5, max_iter=3),
        dict(soft=True, coefficients="within_class", fuzziness=3.0, max_iter=5, temperature=0.5),
        dict(soft=False),
    ],
)
def test_scl_matches_reference(kwargs):
    features, masks = random_case(7, b=3, c=8, h=5, w=5)
    loss = SoftContrastiveLoss(**kwargs)(features.float(), masks.float()).item()
    rule = kwargs.get("coefficients", "within_class")
    expected = np.mean(
        [
            ref.scl_image(
                ref.unit_rows(features[b].numpy()), masks[b, 0].flatten().numpy(),
                tau=kwargs.get("temperature", 0.1), m=kwargs.get("fuzziness", 2.0),
                soft=kwargs["soft"], rule=rule, max_iter=kwargs.get("max_iter", 1),
            )
            for b in range(3)
        ]
    )
    assert loss == pytest.approx(expected, rel=1e-4)


def test_hard_scl_equals_hard_label_loss():
    features, masks = random_case(11, b=2, c=12, h=7, w=7)
    loss = SoftContrastiveLoss(soft=False)(features, masks).item()
    expected = np.mean(
        [
            ref.hard_label_loss(ref.unit_rows(features[b].numpy()), masks[b, 0].flatten().numpy())
            for b in range(2)
        ]
    )
    assert loss == pytest.approx(expected, rel=1e-5)


def test_warmup_uses_hard_labels_until_its_step():
    features, masks = random_case(5)
    loss = SoftContrastiveLoss(warmup_steps=10)
    hard = SoftContrastiveLoss(soft=False)(features, masks)
    soft = SoftContrastiveLoss()(features, masks)
    loss.step = 9
    assert torch.allclose(loss(features, masks), hard)
    loss.step = 10
    assert torch.allclose(loss(features, masks), soft)
    assert not torch.allclose(hard, soft)
    fraction = SoftContrastiveLoss(warmup_steps=0.25)
    fraction.set_total_steps(400)
    fraction.step = 99
    assert not fraction.uses_soft_weights()
    fraction.step = 100
    assert fraction.uses_soft_weights()
    with pytest.raises(ValueError, match="warmup_steps"):
        SoftContrastiveLoss(warmup_steps=2.5)


@pytest.mark.parametrize("make", ALL_LOSSES)
def test_losses_are_invariant_to_pixel_permutation(make):
    torch.manual_seed(0)
    features, masks = random_case(2, b=2, c=8, h=8, w=8)
    perm = torch.randperm(64)
    shuffled_f = features.flatten(2)[..., perm].reshape(features.shape)
    shuffled_m = masks.flatten(2)[..., perm].reshape(masks.shape)
    loss = make()
    if hasattr(loss, "samples"):
        loss.samples = 1000  # more than the pixels: no random sampling
    if isinstance(loss, (TripletLoss, NCELoss)):
        pytest.skip("triplet and the original NCE pair pixels at random by construction")
    assert loss(features, masks).item() == pytest.approx(loss(shuffled_f, shuffled_m).item(), rel=1e-6)


def grad_of(loss, features, masks):
    features = features.clone().requires_grad_(True)
    value = loss(features, masks)
    value.backward()
    return value, features.grad


@pytest.mark.parametrize("make", ALL_LOSSES)
def test_single_class_images_give_finite_zero_loss_with_a_graph(make):
    features = torch.randn(2, 8, 4, 4)
    for masks in (torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)):
        value, grad = grad_of(make(), features, masks)
        assert value.item() == 0.0 and value.requires_grad
        assert grad is not None and torch.isfinite(grad).all()


def test_single_class_image_contributes_nothing_to_the_mean():
    features, masks = random_case(4, b=2)
    mixed = SoftContrastiveLoss()(features[:1], masks[:1])
    one_class = masks.clone()
    one_class[1] = 0.0
    assert SoftContrastiveLoss()(features, one_class).item() == pytest.approx(mixed.item())


@pytest.mark.parametrize("make", ALL_LOSSES)
def test_all_equal_features_give_finite_gradients(make):
    features = torch.ones(2, 8, 6, 6)
    _, masks = random_case(3, b=2, h=6, w=6)
    value, grad = grad_of(make(), features, masks.float())
    assert torch.isfinite(value) and torch.isfinite(grad).all()


@pytest.mark.parametrize("make", ALL_LOSSES)
def test_bf16_inputs_give_finite_loss_and_gradients(make):
    features, masks = random_case(6, b=2, c=16, h=8, w=8)
    value, grad = grad_of(make(), features.to(torch.bfloat16), masks.to(torch.bfloat16))
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert grad.dtype == torch.bfloat16 and torch.isfinite(grad.float()).all()
    reference = make()(features.float(), masks.float())
    if not isinstance(make(), (TripletLoss, NCELoss)):  # these two draw their pairs at random
        assert value.item() == pytest.approx(reference.item(), rel=0.05, abs=0.05)


def test_image_scope_differs_from_batch_scope_when_pristine_features_conflict():
    """Image A's pristine features equal image B's forged ones: only the pooled batch sees a clash."""
    g = torch.Generator().manual_seed(0)
    a_dir, b_dir = unit(torch.randn(2, 16, generator=g))
    features = torch.zeros(2, 16, 4, 4)
    masks = torch.zeros(2, 1, 4, 4)
    masks[:, :, :2] = 1.0  # top half forged in both
    features[0] = a_dir[:, None, None]  # image 0: pristine = a, forged = b
    features[0, :, :2] = b_dir[:, None, None]
    features[1] = b_dir[:, None, None]  # image 1: pristine = b, forged = a
    features[1, :, :2] = a_dir[:, None, None]
    features = features + 0.01 * torch.randn(features.shape, generator=g)
    for make in (SoftContrastiveLoss, InfoNCELoss):
        image = make(scope="image")(features, masks).item()
        batch = make(scope="batch")(features, masks).item()
        assert image < 0.1 < batch, (make, image, batch)  # perfect per image, a clash pooled


def test_loss_decreases_as_classes_separate():
    _, masks = random_case(9, b=2, c=16, h=8, w=8)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(2, 16, 8, 8, generator=g)
    direction = torch.zeros(16, 1, 1)
    direction[0] = 1.0
    values = []
    for scale in (0.0, 1.0, 4.0):
        features = noise + scale * (2 * masks - 1) * direction
        values.append(SoftContrastiveLoss()(features, masks).item())
    assert values[0] > values[1] > values[2]


def test_masks_at_image_resolution_are_downsampled_by_majority():
    masks = torch.zeros(1, 1, 8, 8)
    masks[..., :4, :4] = 1.0  # exactly the top-left feature of a 2 x 2 grid
    masks[..., 4:6, 4:8] = 1.0  # half of the bottom-right feature: not a majority
    down = downsample_mask(masks, (2, 2))
    assert down.tolist() == [[[True, False], [False, False]]]
    with pytest.raises(ValueError, match="divide 0/255"):
        downsample_mask(masks * 255, (2, 2))


def test_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="B x C x h x w"):
        SoftContrastiveLoss()(torch.randn(8, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="2 images but masks hold 3"):
        SoftContrastiveLoss()(torch.randn(2, 8, 4, 4), torch.zeros(3, 1, 4, 4))
    with pytest.raises(ValueError, match="fuzziness"):
        SoftContrastiveLoss(fuzziness=0.5)


# ---------------------------------------------------------------- sampled losses (section 3)


def test_info_nce_matches_official_formula():
    features, masks = random_case(12, b=1, c=8, h=6, w=6)
    loss = InfoNCELoss(samples=1000)(features, masks).item()
    f = ref.unit_rows(features[0].numpy())
    y = masks[0, 0].flatten().numpy()
    assert loss == pytest.approx(ref.info_nce(f[y == 0], f[y == 1]), rel=1e-5)


def test_original_nce_takes_one_positive_per_query():
    """Two pristine pixels: each is the other's one positive, the forged pixels the negatives, so
    the loss is known in closed form; with more pristine pixels it is not the official code's mean
    positive (the thing SCL's all-positives reading adds)."""
    g = torch.Generator().manual_seed(3)
    features = torch.randn(1, 5, 1, 6, generator=g, dtype=torch.float64)
    masks = torch.tensor([[[[0, 0, 1, 1, 1, 1]]]], dtype=torch.float64)
    f = torch.nn.functional.normalize(features[0, :, 0].T, dim=1)
    p, q = f[:2], f[2:]
    logits = torch.stack([torch.cat([(p[0] * p[1]).sum()[None], p[0] @ q.T]),
                          torch.cat([(p[1] * p[0]).sum()[None], p[1] @ q.T])]) / 0.1
    expected = torch.nn.functional.cross_entropy(logits, torch.zeros(2, dtype=torch.long))
    assert NCELoss(temperature=0.1)(features, masks).item() == pytest.approx(expected.item(), rel=1e-5)
    more, masks = random_case(12, b=1, c=8, h=6, w=6)
    assert NCELoss(samples=1000)(more, masks).item() != pytest.approx(InfoNCELoss(samples=1000)(more, masks).item(),
                                                                       rel=1e-3)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        NCELoss(temperature=0)


def test_sampled_losses_sample_at_most_their_budget():
    seen = []

    class Spy(InfoNCELoss):
        def pair_loss(self, pristine, forged):
            seen.append((pristine.shape[0], forged.shape[0]))
            return super().pair_loss(pristine, forged)

    features, masks = random_case(13, b=2, c=4, h=32, w=32, share=0.4)
    Spy(samples=100)(features, masks)
    assert seen and all(p == 100 and q == 100 for p, q in seen)


def test_collapsed_features_sit_at_two_log_two_for_scl_but_high_for_nce():
    """SCL has one negative per query: identical features give s+ = s- and L = 2 ln 2, a plateau
    (README: on weak traces every SCL variant can stall there; NCE's many negatives keep it high)."""
    masks = torch.zeros(2, 1, 8, 8)
    masks[:, :, :3] = 1.0
    collapsed = torch.ones(2, 16, 8, 8)
    for loss in (SoftContrastiveLoss(), SoftContrastiveLoss(soft=False), SoftContrastiveLoss(coefficients="fcm")):
        assert loss(collapsed, masks).item() == pytest.approx(2 * np.log(2), rel=1e-5)
    forged = 24  # NCE: the positive and 24 equal negatives: ln(1 + 24)
    assert InfoNCELoss()(collapsed, masks).item() == pytest.approx(np.log(1 + forged), rel=1e-5)
