"""Peak-RSS reset, for real on this node (placement: tests/node/test_affinity.py)."""
from __future__ import annotations

import numpy as np

from hrvs_ray.probes import memory


def test_peak_rss_follows_a_step_and_resets():
    assert memory.reset_peak_rss(), "clear_refs refused on this kernel"
    base_peak = memory.peak_rss_bytes()
    start = memory.rss_bytes()
    big = np.ones(64 * 1024 * 1024 // 8)            # 64 MiB, touched
    during = memory.peak_rss_bytes()
    assert during - base_peak > 48 * 1024 * 1024
    del big
    assert memory.rss_bytes() < during - 48 * 1024 * 1024   # freed back to the OS
    # The peak stays until reset (within the kernel's batched per-thread RSS counting).
    assert memory.peak_rss_bytes() >= during - 2 * 1024 * 1024
    assert memory.reset_peak_rss()
    after = memory.peak_rss_bytes()
    assert after < during - 48 * 1024 * 1024
    assert abs(after - start) < 16 * 1024 * 1024
