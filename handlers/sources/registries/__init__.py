"""Container registry webhooks: one adapter per registry, each registering itself by import.

Every adapter turns its registry's notion of "a manifest was pushed" into the same two events (see
``push``): the registry's own CloudEvent and a CDEvents ``artifact.published`` with an OCI purl.
GHCR pushes arrive through the GitHub source (``registry_package`` / ``package``) in the same shape.
``revisions`` is no adapter: it reads the commit an image was built from out of its labels.
"""

from handlers.sources.registries import acr, distribution, dockerhub, ecr, gar, harbor, quay  # noqa: F401
from handlers.sources.registries import revisions  # noqa: F401  (the image-labels commit finder)
