"""What the Kubernetes source and actions share: the API client and how workloads are read.

Not a plug-in package itself (nothing here registers anything): ``handlers/sources/kubernetes``
and ``handlers/actions/kubernetes_job.py`` / ``rollout_check.py`` import from it.
"""
