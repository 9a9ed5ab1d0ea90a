"""What a user of the official FOCAL weights waits for on a CPU: the full-size ViT-L and HRNet-W32
in the official files' layouts (random values: the real files cannot be downloaded here), converted
with ``focal-pl export --official``, loaded, and ``localize`` on one photo, with each clustering.

    python benchmarks/official_weights.py [--photo PATH] [--repeats 2]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from common import SHARED, median_time, parser, status_bytes, table, timed, write_result


def official_file(kind: str, folder: Path) -> Path:
    """A state dict as FOCAL_ViT_weights.pth / FOCAL_HRNet_weights.pth hold it (``module.net.`` +
    SAM's image-encoder names, or the pose HRNet's), at the official sizes."""
    from focal_pl.extractors import HRNet, SamViT

    if kind == "vit":
        body = SamViT("large", img_size=1024).body.state_dict()
        state = {"module.net.image_encoder." + k.replace("mlp.fc", "mlp.lin"): v for k, v in body.items()}
    else:
        state = {"module.net." + k: v for k, v in HRNet("w32").body.state_dict().items()}
    path = folder / f"FOCAL_{'ViT' if kind == 'vit' else 'HRNet'}_weights.pth"
    torch.save(state, path)
    return path


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--photo", help="the photo to localize (default: the first of ../shared/data/pristine)")
    options.add_argument("--repeats", type=int, default=2, help="timed runs of each model")
    args = options.parse_args()
    import focal_pl
    from focal_pl.clustering import Clusterer
    from focal_pl.data.synthetic import PhotoPool
    from focal_pl.release import export

    photo = Path(args.photo or PhotoPool(str(SHARED / "pristine")).names[0])  # the pool's first, sorted
    rows, record = [], {"photo": str(photo), "threads": torch.get_num_threads(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("vit", "hrnet"):
            source = official_file(kind, Path(tmp))
            export_s, _, _ = timed(lambda: export(None, Path(tmp) / f"{kind}.pt", official=source))
            load_s, _, model = timed(lambda: focal_pl.load(Path(tmp) / f"{kind}.pt"))
            image = torch.rand(1, 3, 1024, 1024)
            with torch.no_grad():
                forward_s = median_time(lambda: model.module.extractor(image), args.repeats, warmup=1)
                features = model.module.extractor(image)[0]
            entry = {"parameters": model.module.extractor.parameter_count(), "export_s": export_s, "load_s": load_s,
                     "extractor_s": forward_s, "features": list(features.shape), "clustering_s": {}}
            paper = model.module.clusterer
            official = Clusterer(algorithm="cosine_kmeans", grid=paper.grid)  # the same points, pooled alike
            for name, clusterer in (("hdbscan", paper), ("cosine_kmeans", official)):
                entry["clustering_s"][name] = median_time(lambda: clusterer(features), args.repeats, warmup=1)
            entry["localize_s"] = median_time(lambda: model.localize(photo), args.repeats, warmup=1)
            entry["peak_rss_gib"] = status_bytes("VmHWM") / 2**30
            record["models"][kind] = entry
            rows.append([kind, f"{entry['parameters'] / 1e6:.1f} M", " x ".join(map(str, entry["features"])),
                         f"{export_s:.1f}", f"{load_s:.1f}", f"{forward_s:.1f}",
                         f"{entry['clustering_s']['hdbscan']:.2f}", f"{entry['clustering_s']['cosine_kmeans']:.2f}",
                         f"{entry['localize_s']:.1f}", f"{entry['peak_rss_gib']:.1f}"])
            model = features = None
    lines = [f"Photo: `{photo.name}`; {record['threads']} torch threads; random weights in the official layouts "
             "(the real files cannot be downloaded here): the extractor's seconds do not depend on the values, the "
             "clustering's do (features of random weights are not a trained model's). `localize`: one photo, "
             "decoded, resized to 1024 x 1024, extracted and clustered as the release does (HDBSCAN). Peak RSS: "
             "the process's so far (it only grows).", "",
             *table(["model", "parameters", "features", "export s", "load s", "extractor s", "HDBSCAN s",
                     "cosine k-means s", "localize s", "peak RSS GiB"], rows)]
    write_result("official_weights", record, lines, title="The official FOCAL weights on a CPU")


if __name__ == "__main__":
    main()
