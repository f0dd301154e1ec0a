"""The only place that talks to Ray (``ray_io``): node probes, the cells' processes, the sweep driver."""
