import json

import pytest
from conftest import shared_dataset
from ddad_rt import datasets


def test_paper_pool_rule_on_brain_tumor():
    root = shared_dataset("brain_tumor")
    d = json.loads((root / "data.json").read_text())
    ts = datasets.training_set(root, n=1000, ar=0.6)
    assert len(ts.normal) == 1000 and len(ts.unlabeled) == 1000
    names = [p.name for p in ts.unlabeled]
    assert names == d["train"]["unlabeled"]["0"][:400] + d["train"]["unlabeled"]["1"][:600]
    small = datasets.training_set(root, n=100, ar=0.25)
    assert [p.name for p in small.unlabeled] == (d["train"]["unlabeled"]["0"][:75]
                                                 + d["train"]["unlabeled"]["1"][:25])
    assert small.summary["anomaly_rate"] == 0.25
    test = datasets.test_set(root)
    assert len(test) == 1200 and test.labels.sum() == 600


def test_pool_larger_than_data_is_refused():
    root = shared_dataset("busi")
    with pytest.raises(ValueError, match="lower n"):
        datasets.training_set(root, n=1000, ar=0.5)


def test_plain_folder(tmp_path, rng):
    import numpy as np
    from PIL import Image

    for sub, n in (("normal", 3), ("unlabeled", 2), ("test/normal", 2), ("test/abnormal", 2)):
        (tmp_path / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(tmp_path / sub / f"{i}.png")
    (tmp_path / "normal" / "readme.txt").write_text("ignored")
    ts = datasets.training_set(tmp_path)
    assert len(ts.normal) == 3 and len(ts.unlabeled) == 2
    t = datasets.test_set(tmp_path)
    assert list(t.labels) == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="Med-AD"):
        datasets.training_set(tmp_path, n=2)
