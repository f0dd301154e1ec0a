"""Per-step probes and the node's description.

Topology: ``sysfs`` (tolerant reads, ``TopologyError``), ``kinds`` (hybrid core kinds), ``cpusets``
(allowed CPUs and memory nodes), ``model`` (the data), ``topology`` (reading it), ``placement``
(the scope rules). Placement: ``affinity``. Measurement: ``memory``, ``events`` (perf event grammar),
``perf`` + ``counters`` (perf_event_open), ``syscalls`` (the one libc handle), ``flops``. Description:
``nodeinfo`` (a nodes-table row), ``nodedoc`` (what ``hrvs-ray node-info`` prints).

Only ``flops`` (and ``affinity.check_torch_threads``, lazily) import torch: the rest must run
before torch is imported, when the actor applies its placement.
"""
