"""A real, throwaway Kubernetes control plane for integration tests.

The router reacts to Kubernetes events and starts Jobs, so its integration tests need the real
API semantics that fakes get wrong: resourceVersions, watch bookmarks, 410 Gone after compaction,
RBAC denials, controllers that turn a Deployment into Pods. This package builds etcd, the
kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which fakes nodes and kubelets)
from source with Go, caches the binaries, and runs them on loopback ports.

- `build` compiles the binaries once into a versioned cache directory.
- `cluster` generates certificates, starts, waits for and stops the components.
- `fixture` is the pytest plugin (`kube_cluster`) the test suite registers.
- `python -m tests.kubeplane` is the same thing by hand: `build`, `up`, `versions`.
"""
