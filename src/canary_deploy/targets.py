"""Pick the target implementation named by the settings."""

from __future__ import annotations

from canary_deploy.backend import Target
from canary_deploy.config import Settings


def open_target(settings: Settings) -> Target:
    """Return the target for `settings.target`; imports are lazy so each stays optional."""
    if settings.target == "aws" and settings.adopted is not None:
        from canary_deploy.aws.adopted import AdoptedTarget

        return AdoptedTarget.from_settings(settings, settings.adopted)
    if settings.target == "aws":
        from canary_deploy.aws.target import AwsTarget

        return AwsTarget.from_settings(settings)
    from canary_deploy.local.target import LocalTarget

    return LocalTarget.from_settings(settings)
