"""The sample model API: the local stand-in for the user's FastAPI image (v1 and v2)."""

from canary_deploy.sample_app.app import create_app
from canary_deploy.sample_app.faults import Faults

__all__ = ["Faults", "create_app"]
