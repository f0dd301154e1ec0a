"""perf event definitions and the LLC event grammar, in one place.

Pure (standard library only, no torch): the sweep validator (``config.sections``) judges an
``llc`` spec by calling :func:`parse_llc_event`, the very function whose result the counters
open, so a spec the validator accepts is one the counters understand.

LLC event choice:

* ``generic`` -> ``PERF_TYPE_HARDWARE / PERF_COUNT_HW_CACHE_MISSES``. On Intel it maps to the
  architectural ``LONGEST_LAT_CACHE.MISS`` (LLC misses, demand + prefetch), present on every
  Intel core since Core 2. On AMD Zen it maps to an L2-level event, NOT L3: name a raw event
  for such clusters.
* ``ll-read`` -> ``PERF_TYPE_HW_CACHE`` LL / read / miss (offcore-response on Intel; absent on Zen).
* ``raw:0xNNNN`` -> ``PERF_TYPE_RAW`` with that config (e.g. Intel ``MEM_LOAD_RETIRED.L3_MISS`` =
  ``raw:0x20d1``: demand loads that missed L3, the paper's event); at most 64 bits.
* ``none`` -> not opened.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError

PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE, PERF_TYPE_HW_CACHE, PERF_TYPE_RAW = 0, 1, 3, 4
HW_CYCLES, HW_INSTRUCTIONS, HW_CACHE_MISSES = 0, 1, 3
SW_TASK_CLOCK, SW_PAGE_FAULTS, SW_CONTEXT_SWITCHES = 1, 2, 3
LL_READ_MISS = 2 | (0 << 8) | (1 << 16)           # PERF_COUNT_HW_CACHE_LL | OP_READ << 8 | RESULT_MISS << 16

# \Z, not $: "$" also matches before a final newline, and "generic\n" is no event
EVENT_RE = re.compile(r"^(generic|ll-read|none|raw:0x[0-9a-fA-F]{1,16})\Z")
EVENT_HELP = "must be 'generic', 'll-read', 'none' or 'raw:0x<hex>' (at most 64 bits)"


@dataclass(frozen=True)
class Event:
    name: str
    type: int
    config: int


HW_EVENTS = (Event("cycles", PERF_TYPE_HARDWARE, HW_CYCLES), Event("instructions", PERF_TYPE_HARDWARE, HW_INSTRUCTIONS))
SW_EVENTS = (Event("task_clock_ns", PERF_TYPE_SOFTWARE, SW_TASK_CLOCK),
             Event("page_faults", PERF_TYPE_SOFTWARE, SW_PAGE_FAULTS),
             Event("context_switches", PERF_TYPE_SOFTWARE, SW_CONTEXT_SWITCHES))


class EventSpecError(UserError, ValueError):
    pass


def llc_event_problem(spec: object) -> str | None:
    """None if ``spec`` is a valid LLC event spec, else the grammar it breaks (for validators)."""
    return None if isinstance(spec, str) and EVENT_RE.match(spec) else EVENT_HELP


def parse_llc_event(spec: str) -> tuple[Event | None, str]:
    """``generic`` | ``ll-read`` | ``raw:0xHEX`` | ``none`` -> (event or None, recorded name)."""
    if llc_event_problem(spec):
        raise EventSpecError(f"invalid llc event {spec!r}: {EVENT_HELP}")
    if spec == "generic":
        return Event("llc_misses", PERF_TYPE_HARDWARE, HW_CACHE_MISSES), "generic:PERF_COUNT_HW_CACHE_MISSES"
    if spec == "ll-read":
        return Event("llc_misses", PERF_TYPE_HW_CACHE, LL_READ_MISS), "generic:LL-read-miss"
    if spec == "none":
        return None, "none"
    config = int(spec[4:], 16)
    return Event("llc_misses", PERF_TYPE_RAW, config), f"raw:{config:#x}"
