"""Extractors: images B x 3 x H x W in [0, 1] -> features B x C x h x w. They know nothing of losses."""

from focal_pl.extractors.base import Extractor
from focal_pl.extractors.cnn import ForensicCNN
from focal_pl.extractors.fusion import FusedExtractor
from focal_pl.extractors.hrnet import HRNet
from focal_pl.extractors.mit import MiT
from focal_pl.extractors.timm import TimmBackbone
from focal_pl.extractors.vit import SamViT
from focal_pl.extractors.weights import LoadReport, load_weights, read_state_dict

__all__ = [
    "Extractor",
    "ForensicCNN",
    "FusedExtractor",
    "HRNet",
    "LoadReport",
    "MiT",
    "SamViT",
    "TimmBackbone",
    "load_weights",
    "read_state_dict",
]
