"""The default loss must learn: a few dozen steps on noise-level splices separate the features."""

from __future__ import annotations

import torch

from focal_pl.clustering import Clusterer
from focal_pl.extractors import ForensicCNN
from focal_pl.losses import InfoNCELoss, SoftContrastiveLoss
from focal_pl.metrics import ForgeryLocalizationMetrics


def noise_splices(n: int, side: int, generator: torch.Generator):
    """Smooth random images; inside a random box the noise level differs (the only trace)."""
    base = torch.nn.functional.interpolate(torch.rand(n, 3, side // 8, side // 8, generator=generator),
                                           size=(side, side), mode="bilinear", align_corners=False)
    masks = torch.zeros(n, 1, side, side)
    for i in range(n):
        h, w = torch.randint(side // 4, side // 2, (2,), generator=generator).tolist()
        y, x = torch.randint(0, side - h, (1,), generator=generator).item(), torch.randint(0, side - w, (1,), generator=generator).item()
        masks[i, :, y : y + h, x : x + w] = 1
    sigma = 0.01 + 0.05 * masks
    images = (base + sigma * torch.randn(n, 3, side, side, generator=generator)).clamp(0, 1)
    return images, masks


def score(model, images, masks) -> float:
    metric = ForgeryLocalizationMetrics()
    clusterer = Clusterer("kmeans")
    model.eval()
    with torch.no_grad():
        for fmap, truth in zip(model(images), masks):
            prediction, _ = clusterer(fmap)
            metric.update(torch.nn.functional.interpolate(prediction[None, None].float(), size=truth.shape[-2:])[0, 0].bool(), truth[0].bool())
    model.train()
    return metric.compute()["f1"].item()


def train(loss, steps=60, seed=0) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    val_x, val_y = noise_splices(16, 48, g)
    model = ForensicCNN(width=16, depth=5, out_dim=16)
    before = score(model, val_x, val_y)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(steps):
        x, y = noise_splices(8, 48, g)
        value = loss(model(x), y)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    return before, score(model, val_x, val_y)


def test_default_scl_learns_where_the_literal_reading_does_not():
    before, after = train(SoftContrastiveLoss(), steps=150)
    assert before < 0.65 and after > before + 0.3, (before, after)
    _, literal = train(SoftContrastiveLoss(coefficients="fcm"), steps=150)
    assert literal < after - 0.2, (literal, after)  # FOCAL.md: W ~ 0.5 on an untrained model


def test_nce_learns_too():
    before, after = train(InfoNCELoss())
    assert after > before + 0.15, (before, after)
