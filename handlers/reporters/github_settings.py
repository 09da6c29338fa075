"""The ``reporters.github`` settings section: how the GitHub reporters sign in to GitHub.

Reporters need credentials of their own (a GitHub App may write check runs; a webhook secret may
not), so the GitHub reporters share this sub-section of ``reporters`` (``settings.py``). Unknown
keys are errors, and every secret may instead be given as ``<name>_file`` (a mounted Secret), so it
never has to be written into the settings file. Secrets are ``SecretStr``: masked in
``config check``, in logs (``config.logs``) and in error messages.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from handlers.reporters import settings as _parent  # noqa: F401  (registers the parent section first)
from router import plugins
from router.plugins import Duration, Section

DEFAULT_API_URL = "https://api.github.com"


@plugins.settings_section("reporters.github")
class GithubSettings(Section):
    """How the ``githubCheckRun``, ``githubStatus`` and ``githubDeploymentStatus`` reporters sign in."""

    api_url: str = DEFAULT_API_URL
    """GitHub's REST API; ``https://<host>/api/v3`` for GitHub Enterprise Server."""
    app_id: str | None = None
    """The GitHub App's client ID (``Iv23li…``, recommended by GitHub) or numeric app ID: the JWT's ``iss``."""
    private_key: SecretStr | None = None
    """The App's private key (PEM, as GitHub's "Generate a private key" downloads it); ``private_key_file``: its path."""
    installation_id: int | None = Field(None, ge=1)
    """The App's installation to act as; unset: looked up per repository (``GET /repos/{o}/{r}/installation``) and cached."""
    token: SecretStr | None = None
    """A token instead of the App (fine-grained or classic PAT) for commit and deployment statuses only:
    GitHub lets only Apps write check runs. ``token_file``: its path. Used when no App is configured."""
    request_timeout: Duration = Field(10.0, gt=0)
    """Per request to GitHub; a timeout is a temporary error (the stage is reported again later)."""

    @field_validator("app_id", mode="before")
    @classmethod
    def _app_id_text(cls, value: Any) -> Any:
        # YAML reads a numeric app ID as an int; the JWT's iss is compared as written.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _app_complete(self) -> "GithubSettings":
        if (self.app_id is None) != (self.private_key is None):
            missing = "private_key (or private_key_file)" if self.private_key is None else "app_id"
            raise ValueError(f"a GitHub App needs both app_id and private_key; {missing} is missing")
        return self

    @property
    def app(self) -> bool:
        return self.app_id is not None and self.private_key is not None
