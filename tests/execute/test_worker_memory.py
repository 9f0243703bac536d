"""What a worker loads to run numpy tasks: numpy, and not the metadata of every package."""

from __future__ import annotations

import pytest

from serdoctor.execute import Executor

FAST = {"heartbeat": 0.2, "heartbeat_threshold": 1.5}


@pytest.mark.timeout(60)
def test_numpy_arguments_and_results_do_not_load_importlib_metadata_in_the_worker() -> None:
    # their envelopes name numpy's version: the worker finds its own (to check the
    # task's) and numpy's (for its result's header) in numpy's .dist-info folder,
    # not through importlib.metadata (email, zipfile, csv...: 2 MB in every worker)
    import numpy as np

    with Executor(workers=1, **FAST) as ex:
        doubled = ex.submit(np.multiply, np.arange(4), 2).result(timeout=30)
        assert doubled.tolist() == [0, 2, 4, 6]
        # (a lambda travels by value: the worker does not import this module, nor pytest)
        loaded = ex.submit(lambda: sorted(__import__("sys").modules)).result(timeout=30)
        assert "numpy" in loaded and "test_worker_memory" not in loaded
        assert [m for m in loaded if m.startswith(("importlib.metadata", "email", "zipfile"))] == []
