"""FocalModule on its own: defaults of the paper, failure on a non-finite loss, skipped items,
where each tensor lives, the plateau rule, compilation, and a plain Trainer without the CLI."""

from __future__ import annotations

import dataclasses

import json
import logging
from pathlib import Path

import lightning as L
import pytest
import torch

from focal_pl.clustering import Clusterer
from focal_pl.extractors import ForensicCNN
from focal_pl.losses import InfoNCELoss, PixelLoss, SoftContrastiveLoss
from focal_pl.data.batch import Batch
from focal_pl.evaluation.scoring import Clustered
from focal_pl.module import FocalModule
from torch.optim.lr_scheduler import ReduceLROnPlateau


def tiny() -> ForensicCNN:
    return ForensicCNN(width=8, depth=5, out_dim=8)


def batch(n=2, side=32):
    masks = torch.zeros(n, 1, side, side)
    masks[:, :, 4:16, 8:20] = 1
    return Batch(image=torch.rand(n, 3, side, side), mask=masks, name=[f"im{i}" for i in range(n)],
                 size=[(side, side)] * n, truth=[True] * n)


def test_defaults_are_the_papers():
    module = FocalModule(tiny())
    assert isinstance(module.loss, SoftContrastiveLoss) and module.loss.scope == "image"
    assert isinstance(module.clusterer, Clusterer) and module.clusterer.algorithm == "hdbscan"
    assert module.clusterer.min_cluster_size == 200
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["lr"] == 1e-4
    plateau = scheduler["scheduler"]
    assert isinstance(plateau, ReduceLROnPlateau)
    assert (plateau.mode, plateau.factor, plateau.patience) == ("max", 0.5, 3)
    assert scheduler["monitor"] == module.monitor == "val/score"  # mean of F1 and IoU: the official code's score
    with pytest.raises(ValueError, match="monitor must be one of val/f1, val/f1_forged, val/iou, val/score"):
        FocalModule(tiny(), monitor="val/loss")


def test_optimizer_and_scheduler_factories_from_config():
    module = FocalModule(tiny(), optimizer=lambda p: torch.optim.SGD(p, lr=0.5),
                         scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, 10),
                         scheduler_interval="step")
    config = module.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert config["lr_scheduler"]["interval"] == "step" and "monitor" not in config["lr_scheduler"]
    assert isinstance(FocalModule(tiny(), scheduler=None).configure_optimizers(), torch.optim.Adam)


def test_training_step_passes_the_global_step_to_the_loss_warmup():
    loss = SoftContrastiveLoss(warmup_steps=5)
    module = FocalModule(tiny(), loss=loss)
    module.training_step(batch(), 0)
    assert loss.step == 0 and not loss.uses_soft_weights()


class Exploding(PixelLoss):
    def forward(self, features, masks):
        return features.sum() * float("nan")


def test_non_finite_loss_stops_naming_step_and_batch():
    module = FocalModule(tiny(), loss=Exploding())
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 0 \(batch 7: im0, im1\)"):
        module.training_step(batch(), 7)


def test_an_all_skipped_batch_is_counted_and_ignored():
    module = FocalModule(tiny(), loss=InfoNCELoss())
    assert module.training_step(Batch(skipped=3), 0) is None
    assert module.skipped_items == 3
    assert torch.isfinite(module.training_step(batch(), 1))


def test_predict_step_clusters_and_leaves_scores_and_files_to_the_writer():
    module = FocalModule(tiny(), clusterer=Clusterer("kmeans"))
    module.eval()
    with torch.no_grad():
        out = module.predict_step(batch(3), 0)
    assert isinstance(out, Clustered) and out.features.shape == (3, 8, 8, 8)
    assert len(out.maps) == 3 and all(m.shape == (8, 8) and m.dtype == torch.bool for m, _ in out.maps)
    assert all(score.device.type == "cpu" for _, score in out.maps)  # the masker's results on the host


def test_only_the_model_inputs_change_device():
    """The bug of the first GPU run: the truth went to the GPU with the batch while the clustered
    prediction came back on the CPU. Here the truth and the metadata stay on the host whatever the
    device (``meta`` stands in for a GPU: a device other than the host's)."""
    host = dataclasses.replace(batch(2), mask_full=[torch.ones(40, 50, dtype=torch.bool)] * 2, size=[(40, 50)] * 2)
    moved = FocalModule(tiny()).transfer_batch_to_device(host, torch.device("meta"), 0)
    assert moved.image.device.type == "meta" and moved.mask.device.type == "meta"
    assert all(m.device.type == "cpu" for m in moved.mask_full)
    assert moved.name == host.name and moved.size == host.size
    assert host.image.device.type == "cpu"  # the loader's batch itself is left as it was
    last = FocalModule(tiny(), channels_last=True).transfer_batch_to_device(host, torch.device("cpu"), 0)
    assert last.image.is_contiguous(memory_format=torch.channels_last)
    assert host.host_copy().image is None and host.host_copy().mask is None  # what a host thread keeps


def test_a_bad_file_is_warned_about_once_and_counted_every_time(caplog):
    module = FocalModule(tiny(), loss=InfoNCELoss())
    bad = Batch(skipped=2, problems=[("a.jpg", "truncated"), ("b.png", "empty file")])
    with caplog.at_level(logging.WARNING, logger="focal_pl.module"):
        for _ in range(3):  # three epochs meet the same two files
            module.training_step(bad, 0)
    assert module.skipped_items == 6
    assert caplog.text.count("skipping a.jpg: truncated") == 1 and caplog.text.count("b.png") == 1


def test_a_loss_that_is_not_a_pixel_loss_is_refused_by_name():
    with pytest.raises(TypeError, match="PixelLoss, got MSELoss"):
        FocalModule(tiny(), loss=torch.nn.MSELoss())


def test_compiled_extractor_gives_the_eager_numbers():
    torch.manual_seed(0)
    eager = FocalModule(tiny(), loss=SoftContrastiveLoss())
    compiled = FocalModule(tiny(), loss=SoftContrastiveLoss(), compile={"backend": "inductor"})
    compiled.load_state_dict(eager.state_dict())
    compiled.configure_model()
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints keep their keys
    data = batch(2)
    losses = []
    for module in (eager, compiled):
        module.train()
        loss = module.loss(module(data.image), data.mask)
        loss.backward()
        losses.append((loss.detach(), [p.grad.clone() for p in module.extractor.parameters()]))
    assert torch.allclose(losses[0][0], losses[1][0], atol=1e-5)
    for a, b in zip(losses[0][1], losses[1][1]):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)


def synthetic_data(train: int = 16, val: int = 4):
    from focal_pl.data import ForgeryDataModule, SyntheticForgeries

    return ForgeryDataModule(train=SyntheticForgeries(train, 64, seed=1), val=SyntheticForgeries(val, 64, seed=9),
                             image_size=64, batch_size=4, num_workers=0)


def test_a_plain_trainer_trains_validates_and_steps_the_plateau_once_per_validation(tmp_path):
    """No CLI, no callbacks given: the module validates by itself (val/score logged) and steps the
    plateau rule at each validation (every 3 steps here, in 4-step epochs), not on Lightning's own
    intervals; a plain Trainer writes none of the run's files."""
    module = FocalModule(tiny(), clusterer=Clusterer(min_cluster_size=0.05),
                         optimizer=lambda p: torch.optim.SGD(p, lr=1e-9))
    trainer = L.Trainer(max_steps=10, val_check_interval=3, check_val_every_n_epoch=None,
                        num_sanity_val_steps=0, default_root_dir=tmp_path, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(module, synthetic_data())
    assert 0.0 <= trainer.callback_metrics["val/score"] <= 1.0
    scores = module.validation_scores
    assert trainer.callback_metrics["val/score"] == pytest.approx((scores["f1"] + scores["iou"]) / 2)
    [config] = trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, ReduceLROnPlateau) and config.monitor == "val/score"
    assert config.scheduler.last_epoch == 3  # validations at steps 3, 6 and 9
    assert not (Path(tmp_path) / "metrics.json").exists()


def test_focal_pl_trainer_adds_the_runs_files_and_a_final_validation(tmp_path):
    """``focal_pl.trainer``: the same fit with the run's callbacks: metrics.json records every
    validation, a final one at step 10 (the last step was no validation step), and the plateau
    stepped once for each of the four."""
    import focal_pl

    module = FocalModule(tiny(), clusterer=Clusterer(min_cluster_size=0.05),
                         optimizer=lambda p: torch.optim.SGD(p, lr=1e-9))
    trainer = focal_pl.trainer(tmp_path, max_steps=10, val_check_interval=3, check_val_every_n_epoch=None,
                               num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, synthetic_data())
    folder = Path(tmp_path) / "version_0"
    record = json.loads((folder / "metrics.json").read_text())
    assert [e["step"] for e in record["history"]] == [3, 6, 9, 10]
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 4
    assert record["final"]["step"] == 10 and record["run_dir"] == str(folder.resolve())
    assert {p.name for p in (folder / "checkpoints").iterdir()} == {"last.ckpt", f"best-step={record['best']['step']}.ckpt"}
    assert json.loads((folder / "run.json").read_text())["state"] == "finished"


def test_module_built_in_python_checkpoints_without_pickled_objects():
    module = FocalModule(tiny(), clusterer=Clusterer("kmeans"))
    assert "extractor" not in module.hparams and "clusterer" not in module.hparams
    assert module.hparams["monitor"] == "val/score"


def test_log_progress_says_what_a_log_file_needs(tmp_path, capsys):
    """Without a progress bar: a line when the untrained validation starts (it takes minutes at
    the paper's size on a CPU), a line every `every` steps, progress inside long validations, and
    one line per validation."""
    from focal_pl.training.progress import LogProgress

    module = FocalModule(tiny(), clusterer=Clusterer(min_cluster_size=0.05))
    trainer = L.Trainer(max_steps=4, val_check_interval=2, check_val_every_n_epoch=None, num_sanity_val_steps=-1,
                        default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[LogProgress(every=2, evaluation_seconds=0.0)])
    trainer.fit(module, synthetic_data())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("validating the untrained model (--trainer.num_sanity_val_steps 0 skips it): 1 batches")
    steps = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["2/4", "4/4"]
    assert "ETA" in steps[0] and "ETA" not in steps[1]  # the time to the end of the budget, while there is one
    validations = [line.split(":")[0] for line in lines if line.startswith("validation at step")]
    assert validations == ["validation at step 2", "validation at step 4"]
    assert any(line.startswith("  validation batch 1/1 (") for line in lines)
    assert all("score = (macro F1 + IoU) / 2" in line for line in lines if line.startswith("validation at step"))
