"""Per-step probes: topology and scopes, placement, memory, perf counters, FLOPs, node description.

Only ``flops`` (and ``affinity.check_torch_threads``, lazily) import torch: the rest must run
before torch is imported, when the actor applies its placement.
"""
