"""Actions that rules dispatch: smoke tests and verifications. Importing registers each one."""

from handlers.actions import cloudevent, exec, http_probe  # noqa: F401  (registration by import)
from handlers.actions import metric_gate  # noqa: F401  (handlers/prometheus/ is its query API)
from handlers.actions import kubernetes_job, manifest_check, rollback, rollout_check  # noqa: F401  (handlers/kubernetes/ is shared)
from handlers.actions import function  # noqa: F401  (handlers/functions/ is its loader and services)
