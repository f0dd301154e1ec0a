"""The node: what it is and where a scope runs on it.

``sysfs`` (tolerant reads of ``/sys`` and ``/proc``, live or a recorded snapshot), ``topology_types``
(the topology as data), ``kinds`` (hybrid core kinds), ``cpusets`` (allowed CPUs and memory
nodes), ``topology`` (reading it all), ``placement`` (the scope rules), ``affinity`` (applying
a placement to this process), ``description`` (a ``nodes`` row, the paper's Table 3) and
``node_info`` (what ``hrvs-ray node-info`` prints). Nothing here imports torch but
``affinity.check_torch_threads``, lazily: placement happens before torch starts.
"""
