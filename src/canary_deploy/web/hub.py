"""The latest HTML of each live part, and the pages waiting for a change: one reader
feeds every open page, so ten tabs cost the stack (and CloudWatch) no more than one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping


class Hub:
    """Fragments by name, each stamped with the version that last changed it."""

    def __init__(self) -> None:
        self._fragments: dict[str, str] = {}
        self._changed_at: dict[str, int] = {}
        self.version = 0
        self._changed = asyncio.Condition()

    async def publish(self, fragments: Mapping[str, str]) -> None:
        """Take new fragments; pages hear only of those that differ."""
        changed = {k: v for k, v in fragments.items() if self._fragments.get(k) != v}
        if not changed:
            return
        async with self._changed:
            self.version += 1
            for name, html in changed.items():
                self._fragments[name] = html
                self._changed_at[name] = self.version
            self._changed.notify_all()

    def get(self, name: str, default: str = "") -> str:
        return self._fragments.get(name, default)

    def since(self, version: int) -> dict[str, str]:
        """The fragments changed after `version` (all of them for 0)."""
        return {k: self._fragments[k] for k, v in self._changed_at.items() if v > version}

    async def wait(self, version: int, timeout_s: float) -> bool:
        """Until something changed after `version`; False on timeout."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version > version), timeout_s
                )
            except TimeoutError:
                return False
        return True


def sse_message(version: int, fragments: Mapping[str, str]) -> str:
    """One server-sent event: `update` with the changed fragments as JSON.

    >>> sse_message(3, {"chain": "<p>x</p>"})
    'id: 3\\nevent: update\\ndata: {"chain": "<p>x</p>"}\\n\\n'
    """
    return f"id: {version}\nevent: update\ndata: {json.dumps(dict(fragments))}\n\n"
