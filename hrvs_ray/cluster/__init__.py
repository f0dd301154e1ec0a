"""Ray side: node probes, node-scope cell actors, and the sweep driver."""
