"""The only place that talks to Ray (``ray_io``): node probes, node-scope cell actors, the sweep driver."""
