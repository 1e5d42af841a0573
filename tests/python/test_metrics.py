import pytest
from ddad_rt.metrics import average_precision, roc_auc
from sklearn.metrics import average_precision_score, roc_auc_score


@pytest.mark.parametrize("ties", [False, True])
def test_metrics_match_sklearn(rng, ties):
    for _ in range(100):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = rng.integers(0, 4, n).astype(float) if ties else rng.random(n)
        assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_metrics_reject_one_class():
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([0, 0], [0.1, 0.2])
