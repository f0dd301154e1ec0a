"""Steal time from /proc/stat: parsed from recorded text, and flagged per step."""
from __future__ import annotations

import pandas as pd
import pytest

from hrvs_ray.metrics import derive
from hrvs_ray.metrics.flags import STEAL_LIMIT, steal_note
from hrvs_ray.probes.steal import parse_steal_ticks, read_steal_seconds

# recorded on the 2-vCPU VM this project runs on (the steal column is the 8th value)
STAT = """cpu  180710 67143 45671 40613 1747 0 846 3662 0 0
cpu0 83307 33900 21485 28792 666 0 180 1822 0 0
cpu1 97403 33243 24186 11820 1081 0 666 1839 0 0
intr 1234 0 0
ctxt 99
"""
OLD_KERNEL = "cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\n"      # before 2.6.11: no steal column


def test_parse_steal_sums_the_cells_cpus():
    assert parse_steal_ticks(STAT) == 3662
    assert parse_steal_ticks(STAT, [0]) == 1822
    assert parse_steal_ticks(STAT, [0, 1]) == 1822 + 1839
    assert parse_steal_ticks(STAT, [7]) is None
    assert parse_steal_ticks(OLD_KERNEL) is None and parse_steal_ticks(OLD_KERNEL, [0]) is None


def test_live_steal_is_cumulative():
    a = read_steal_seconds([0])
    b = read_steal_seconds([0])
    assert a is not None and b >= a >= 0


def _steps(steal: list[float | None]) -> pd.DataFrame:
    n = len(steal)
    return pd.DataFrame({"cell_id": ["c"] * n, "step": range(n), "warmup": [False] * n, "seconds": [2.0] * n,
                         "cores": [2] * n, "steal_seconds": steal, "total_px": [1e6] * n,
                         "informative_px": [1e6] * n, "instructions": [None] * n, "cycles": [None] * n,
                         "llc_misses": [None] * n, "flops": [None] * n, "padding_px": [0] * n})


def test_steps_above_five_percent_steal_are_flagged():
    # 4 CPU-seconds per step: 0.2 s is exactly 5 % (not flagged), 0.4 s is 10 %
    d = derive(_steps([0.0, 0.2, 0.4, None]))
    assert list(d["steal_share"].iloc[:3]) == pytest.approx([0.0, STEAL_LIMIT, 0.1])
    note = steal_note(d)
    assert note.startswith("1 of 4 timed steps lost more than 5% of their CPU time")
    assert "worst 10% in cell c step 2" in note
    assert steal_note(derive(_steps([0.0, 0.1]))) is None


def test_results_without_steal_column_give_no_note():
    d = derive(_steps([0.0]).drop(columns="steal_seconds"))
    assert d["steal_share"].isna().all() and steal_note(d) is None


def test_other_processes_cpu_time_is_the_cpus_busy_ticks_less_our_own():
    from hrvs_ray.probes.steal import cpu_use, parse_cpu_ticks, ticks_per_second
    busy0 = 83307 + 33900 + 21485 + 0 + 180          # user nice system irq softirq of cpu0
    assert parse_cpu_ticks(STAT, [0]) == (busy0, 1822)
    assert parse_cpu_ticks(STAT, [7]) is None and parse_cpu_ticks(OLD_KERNEL, [0]) == (1 + 2 + 3 + 6 + 7, None)
    hz = ticks_per_second()
    got = cpu_use((1000, 50), (1000 + 3 * hz, 50 + hz // 2), own_cpu_seconds=2.0)
    assert got == {"steal_seconds": pytest.approx(0.5, abs=0.02), "other_cpu_seconds": pytest.approx(1.0)}
    assert cpu_use((0, 0), (hz, 0), own_cpu_seconds=1.5)["other_cpu_seconds"] == 0.0   # ticks are sampled
    assert cpu_use(None, (0, 0), 1.0) == {"steal_seconds": None, "other_cpu_seconds": None}
    d = derive(pd.DataFrame({"seconds": [2.0], "cores": [2], "total_px": [1e6], "informative_px": [1e6],
                             "instructions": [None], "cycles": [None], "llc_misses": [None], "flops": [None],
                             "padding_px": [0], "other_cpu_seconds": [0.4]}))
    assert d["other_cpu_share"].iloc[0] == pytest.approx(0.1)


def test_cells_whose_cpus_other_processes_used_are_flagged():
    from hrvs_ray.metrics.flags import OTHER_CPU_LIMIT, other_cpu_note
    t = pd.DataFrame({"cell_id": ["a", "a", "b"], "step": [0, 1, 1], "warmup": [True, False, False],
                      "other_cpu_share": [0.9, 0.2, OTHER_CPU_LIMIT]})
    note = other_cpu_note(t)
    assert note.startswith("1 of 2 timed steps shared their CPUs") and "in 1 cell(s) (a)" in note and "20%" in note
    assert other_cpu_note(t.assign(other_cpu_share=0.0)) is None
