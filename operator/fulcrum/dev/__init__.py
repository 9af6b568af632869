"""``fulcrum dev``: a real local Kubernetes for tests and the quickstart.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the kubelet, kube-proxy and kubectl are built
from the pinned Go modules in ``hack/devcluster`` (:mod:`fulcrum.dev.build`); the control plane runs on the
host (:mod:`fulcrum.dev.cluster`), kwok registers fake GPU node pools (:mod:`fulcrum.dev.nodes`), and the node
``local-0`` is a real kubelet on containerd + runc with CNI networking and kube-proxy in namespaces of its own
(:mod:`fulcrum.dev.node`, :mod:`fulcrum.dev.nodehost`, :mod:`fulcrum.dev.network`), pulling Fulcrum's images
(:mod:`fulcrum.dev.images`) from a registry on its loopback.
"""
