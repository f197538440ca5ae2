"""dfsim."""
