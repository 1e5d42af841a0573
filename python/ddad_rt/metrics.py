"""Image-level AUROC and average precision with scikit-learn's semantics, in NumPy
(ddad_rt does not depend on scikit-learn; the tests compare against it)."""

from __future__ import annotations

import numpy as np

from ddad_rt.errors import InputError


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        msg = f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}"
        raise InputError(msg)
    if not np.isin(y, (0, 1)).all():
        msg = "labels must be 0 (normal) or 1 (abnormal)"
        raise InputError(msg)
    if y.min(initial=1) == y.max(initial=0):
        msg = "both classes are needed: labels hold only one class"
        raise InputError(msg)
    if not np.all(np.isfinite(s)):
        msg = "scores contain NaN or infinite values"
        raise InputError(msg)
    return y, s


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (ties count one half), as sklearn.metrics.roc_auc_score."""
    y, s = _check(labels, scores)
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    # Average ranks over ties (Mann-Whitney U): a tie group at sorted positions a..b-1 has
    # ranks a+1..b, mean (a + b + 1) / 2. Vectorised: pixel-level AUCs rank millions of values.
    n = len(s)
    boundaries = np.flatnonzero(np.diff(s_sorted)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [n]])
    ranks = np.empty(n, np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    n_pos = int(y.sum())
    n_neg = n - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(labels, scores) -> float:
    """Average precision, sum over thresholds of (R_n - R_{n-1}) P_n, as
    sklearn.metrics.average_precision_score (no interpolation)."""
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_desc, y_desc = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_desc)), len(s) - 1]
    tps = np.cumsum(y_desc)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    recall_prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - recall_prev) * precision))
