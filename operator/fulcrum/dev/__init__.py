"""``fulcrum dev``: a real local Kubernetes control plane for tests and the quickstart.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are built from the pinned Go
modules in ``hack/devcluster`` (:mod:`fulcrum.dev.build`), started on loopback with real TLS
(:mod:`fulcrum.dev.cluster`), kwok registers fake GPU node pools (:mod:`fulcrum.dev.pools`), and
a Python node agent (:mod:`fulcrum.dev.agent`) acts as the kubelet of node ``local-0``: it runs the
pods bound to it as local processes, each pod in its own network namespace.
"""
