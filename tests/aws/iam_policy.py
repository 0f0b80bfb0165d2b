"""The operator's IAM policy (docs/operator-policy.json) as a test oracle: which actions it
allows, and which of the API calls `canary` made (CANARY_AWS_CALL_LOG) it does not."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

POLICY_PATH = Path(__file__).resolve().parents[2] / "docs" / "operator-policy.json"
# API operations IAM authorises through other actions: a transaction needs the action of
# each item it writes (TransactWriteItems has no action of its own).
AUTHORISED_BY: dict[str, tuple[str, ...]] = {
    "dynamodb:TransactWriteItems": (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    ),
    "dynamodb:TransactGetItems": ("dynamodb:GetItem",),
}


def load_policy(path: Path = POLICY_PATH) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict)
    return doc


def allowed_patterns(policy: Mapping[str, Any]) -> list[str]:
    """Every action pattern an Allow statement names (resources and conditions aside)."""
    patterns: list[str] = []
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"]
        patterns += [actions] if isinstance(actions, str) else actions
    return patterns


def allows(policy: Mapping[str, Any], action: str) -> bool:
    """True when some Allow statement names `action` (IAM matches case-insensitively)."""
    needed = AUTHORISED_BY.get(action, (action,))
    patterns = [p.lower() for p in allowed_patterns(policy)]
    return all(any(fnmatchcase(a.lower(), p) for p in patterns) for a in needed)


def not_allowed(policy: Mapping[str, Any], actions: Iterable[str]) -> list[str]:
    return sorted({a for a in actions if not allows(policy, a)})


def recorded_calls(log: Path) -> set[str]:
    """The IAM actions of the API calls logged (CANARY_AWS_CALL_LOG), none if no call."""
    return set(log.read_text().split()) if log.exists() else set()
