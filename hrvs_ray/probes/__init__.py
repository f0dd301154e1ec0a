"""What is measured per step: ``counters`` + ``perf`` (perf_event_open), ``events`` (the perf
event grammar), ``memory`` (RSS and its peak), ``flops`` (counted on meta tensors) and
``syscalls`` (the one libc handle, shared with ``node.affinity``).

Only ``flops`` imports torch: the rest must run before torch is imported, when the cell's
process applies its placement and opens its counters.
"""
