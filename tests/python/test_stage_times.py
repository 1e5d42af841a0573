"""Engine.stage_times says where the time went: one entry per pipeline stage that ran, the
images each processed, only the refiners a selection needed, sums that add up to no more
than the calls took, and a reset that starts them again."""

from __future__ import annotations

import time

import ddad_rt
import numpy as np
import pytest

CPU_STAGES = ("input", "ensemble", "discrepancy")


def test_stage_times_count_every_image_and_only_the_stages_that_ran(trained):
    engine = ddad_rt.Engine(trained[0], device="cpu", precision="fp32", max_batch=4, num_threads=1)
    assert engine.stage_times() == {}
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32), np.uint8)  # chunks of 4 + 2
    start = time.perf_counter()
    engine.score(images, scores=("inter",))
    wall = time.perf_counter() - start
    t = engine.stage_times()
    assert set(t) == set(CPU_STAGES)  # no refiner ran for a score without one
    for stage in CPU_STAGES:
        assert t[stage]["images"] == 6
        assert 0 < t[stage]["seconds"]
    assert sum(v["seconds"] for v in t.values()) <= wall  # one caller: stages within its call

    engine.score(images, scores=("r_dual",))
    t = engine.stage_times(reset=True)
    assert t["ensemble"]["images"] == 12  # summed over both calls
    assert t["refine_dual"]["images"] == 6 and "refine_intra" not in t
    assert t["refine_softmax"]["images"] == 6
    assert engine.stage_times() == {}  # the reset zeroed them

    engine.score(images)  # every score: both refiners, one softmax pass each
    t = engine.stage_times()
    assert t["refine_dual"]["images"] == t["refine_intra"]["images"] == 6
    assert t["refine_softmax"]["images"] == 12


def test_stage_times_of_a_closed_engine_say_it_was_closed(trained):
    engine = ddad_rt.Engine(trained[0], device="cpu")
    engine.close()
    with pytest.raises(ddad_rt.EngineError, match="closed"):
        engine.stage_times()
