"""The examples' output lines against ddad_rt.Engine on the same image files: every
program must print each image once, with the bundle's default score equal to the Python
engine's to 1e-6 relative.

    python tests/sdk/compare_scores.py BUNDLE OUTPUT.txt...

Each OUTPUT.txt holds one program's stdout: "PATH SCORE" per line.
"""

from __future__ import annotations

import sys

import ddad_rt
import numpy as np
from PIL import Image

RTOL = 1e-6


def read_lines(path: str) -> dict[str, float]:
    scores = {}
    with open(path) as f:
        for line in f:
            image, score = line.rsplit(" ", 1)
            scores[image] = float(score)
    return scores


def main(bundle: str, outputs: list[str]) -> int:
    runs = {out: read_lines(out) for out in outputs}
    paths = sorted(next(iter(runs.values())))
    engine = ddad_rt.Engine(bundle)
    images = np.stack([np.asarray(Image.open(p), np.uint8) for p in paths])
    expected = engine.score(images).score.astype(np.float64)
    worst = 0.0
    for out, scores in runs.items():
        if sorted(scores) != paths:
            print(f"{out}: scored other images than {outputs[0]}", file=sys.stderr)
            return 1
        got = np.array([scores[p] for p in paths])
        rel = np.abs(got - expected) / np.maximum(np.abs(expected), 1e-30)
        worst = max(worst, float(rel.max()))
        if rel.max() > RTOL:
            i = int(rel.argmax())
            print(f"{out}: {paths[i]} scored {got[i]!r}, ddad_rt.Engine {expected[i]!r} "
                  f"(relative difference {rel[i]:.2e} > {RTOL})", file=sys.stderr)
            return 1
    print(f"compare-scores: {len(runs)} programs x {len(paths)} images agree with ddad_rt.Engine "
          f"({engine.info['backend']}, {engine.info['device']}): worst relative difference "
          f"{worst:.2e} (limit {RTOL})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
