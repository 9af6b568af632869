"""The operator's I/O side: an async Kubernetes REST client, the object cache, the work queue and the
reconciler that feeds ``fulcrum.reconcile.plan`` and applies its result."""
