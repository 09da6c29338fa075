"""Reporters that rules list in ``spec.report``: where a run's progress and verdict are told. Importing registers each one."""

from handlers.reporters import settings  # noqa: F401  (the reporters: parent section, first)
from handlers.reporters import cloudevent, gitlab_commit_status  # noqa: F401  (registration by import)
from handlers.reporters import github_check_run, github_deployment_status, github_status  # noqa: F401
