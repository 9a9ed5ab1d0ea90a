"""What needs a fresh interpreter of its own: imports that must stay light, messages for missing or
moved libraries, and memory bounds."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

# ---------------------------------------------------------------- memory at HRNet's map size

MEMORY_PROBE = """
import json, resource, torch
from focal_pl.losses import SoftContrastiveLoss
torch.set_num_threads(2)
f = torch.randn(1, 32, 256, 256, requires_grad=True)
m = torch.zeros(1, 1, 256, 256); m[..., 64:160, 80:200] = 1
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loss = SoftContrastiveLoss(coefficients="{rule}", max_iter=3)(f, m)
loss.backward()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(grown_kib=after - before, loss=loss.item(), finite=bool(f.grad.isfinite().all()))))
"""


def test_the_spanning_tree_methods_are_one_list_that_imports_nothing_heavy():
    """``MST_METHODS`` lives in ``clustering.methods``: the package's startup names it without loading
    the fast HDBSCAN module (and scikit-learn's private tree code), which stays a lazy import."""
    import subprocess
    import sys

    from focal_pl.clustering import MST_METHODS, algorithms, core, fast_hdbscan, methods

    assert algorithms.MST_METHODS is fast_hdbscan.MST_METHODS is core.MST_METHODS is MST_METHODS is methods.MST_METHODS
    assert set(MST_METHODS) == {"auto", "prim", "boruvka"}
    check = ("import sys, focal_pl.clustering; "
             "assert 'focal_pl.clustering.fast_hdbscan' not in sys.modules, 'fast_hdbscan loaded at startup'; "
             "assert 'sklearn.cluster._hdbscan._linkage' not in sys.modules, 'private tree code loaded'; "
             "assert 'hdbscan' not in sys.modules, 'the hdbscan package loaded at startup'")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_missing_hdbscan_package_is_one_line_naming_pip_install():
    check = (
        "import sys; sys.modules['hdbscan'] = None\n"
        "from focal_pl.clustering import Clusterer, cluster_labels\n"
        "import numpy as np\n"
        "Clusterer()\n"
        "for call in (lambda: Clusterer(backend='hdbscan'),\n"
        "             lambda: cluster_labels(np.ones((50, 4), np.float32), min_cluster_size=5, backend='hdbscan')):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as error:\n"
        "        assert 'pip install hdbscan' in str(error) and '\\n' not in str(error), error\n"
        "    else:\n"
        "        raise AssertionError('no error')\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_moved_private_module_names_the_file_to_fix_and_the_torch_backend_falls_back():
    """Simulated: a scikit-learn whose ``_linkage`` lacks ``make_single_linkage``. The import error says
    which file must follow; ``cluster_labels`` warns with it and gives the public class's labels."""
    check = """
import sys, types, warnings
import numpy as np
import sklearn.cluster  # the public class keeps its own references
real = sys.modules["sklearn.cluster._hdbscan._linkage"]
moved = types.ModuleType(real.__name__)
moved.__dict__.update({k: v for k, v in vars(real).items() if k != "make_single_linkage"})
sys.modules[real.__name__] = moved
try:
    import focal_pl.clustering.fast_hdbscan
except ImportError as error:
    assert "fast_hdbscan/sklearn_tree.py must follow" in str(error), error
    print("message ok")
from focal_pl.clustering import cluster_labels
rows = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    labels = cluster_labels(rows, min_cluster_size=10)
assert labels.shape == (60,) and any("sklearn_tree.py must follow" in str(w.message) for w in caught)
print("fallback ok")
"""
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["message", "ok", "fallback", "ok"]


@pytest.mark.parametrize("rule", ["within_class", "fcm"])
def test_scl_on_a_65536_pixel_image_runs_in_bounded_memory(rule):
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE.format(rule=rule)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    # an N x N float32 similarity matrix alone would be 16 GiB; the O(N C) loss needs tens of MiB
    assert probe["finite"] and np.isfinite(probe["loss"])
    assert probe["grown_kib"] < 512 * 1024, probe
