"""The node agent of ``local-0``: a small kubelet that runs pods as local processes."""
