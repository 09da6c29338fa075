"""Webhook and watch sources. Importing this package registers every source with the core."""

from handlers.sources import github, gitlab  # noqa: F401  (registration by import)
from handlers.sources import registries  # noqa: F401  (container registries: handlers/sources/registries/)
from handlers.sources import kubernetes  # noqa: F401  (watch source: handlers/sources/kubernetes/)
