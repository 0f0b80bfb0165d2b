"""Command templates, the local target's "images": `builtin:v1` or a command with `$PORT`."""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass

from canary_deploy.errors import UsageError

BUILTIN_PREFIX = "builtin:"
# The sample app's versions (its models, `sample_app.model.MODELS`; a test keeps the two
# in step): a label it does not know would silently serve v1's model.
BUILTIN_VERSIONS = ("v1", "v2")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PORT = re.compile(r"\$\{PORT\}|\$PORT\b")
_TEMPLATE_HINT = (
    "use builtin:v1 / builtin:v2 for the sample app, or a command that listens on $PORT, "
    "e.g. 'uvicorn myapp:app --port $PORT'"
)


@dataclass(frozen=True)
class TaskCommand:
    """A parsed image: argv with `$PORT` placeholders and leading `NAME=value` assignments."""

    image: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def render(self, port: int) -> tuple[list[str], dict[str, str]]:
        """The argv and extra environment for a task listening on `port`."""
        argv = [_PORT.sub(str(port), arg) for arg in self.argv]
        env = {name: _PORT.sub(str(port), value) for name, value in self.env}
        env["PORT"] = str(port)
        return argv, env


def parse_image(image: str, *, role: str = "image") -> TaskCommand:
    """Parse and validate a command template; every problem is a UsageError naming `role`.

    >>> parse_image("builtin:v2").argv[-3:]
    ('v2', '--port', '$PORT')
    >>> parse_image("FOO=1 python -m http.server $PORT").env
    (('FOO', '1'),)
    >>> parse_image("CANARY_FAULT_ERROR_RATE=0.05 builtin:v2").env
    (('CANARY_FAULT_ERROR_RATE', '0.05'),)
    """
    try:
        tokens = shlex.split(image.strip())
    except ValueError as exc:
        raise UsageError(
            f"{role} {image!r} is not a valid command: {exc}", hint=_TEMPLATE_HINT
        ) from None
    env: list[tuple[str, str]] = []
    while tokens and _ENV_ASSIGNMENT.match(tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        env.append((name, value))
    if len(tokens) == 1 and tokens[0].startswith(BUILTIN_PREFIX):
        label = tokens[0].removeprefix(BUILTIN_PREFIX)
        if label not in BUILTIN_VERSIONS:
            known = " and ".join(BUILTIN_PREFIX + v for v in BUILTIN_VERSIONS)
            raise UsageError(
                f"{role} {image!r}: the sample app's versions are {known}",
                hint=_TEMPLATE_HINT,
            )
        argv = (sys.executable, "-m", "canary_deploy.sample_app", "--version", label)
        return TaskCommand(image=image, argv=(*argv, "--port", "$PORT"), env=tuple(env))
    if not tokens:
        raise UsageError(f"{role} {image!r} has no command to run", hint=_TEMPLATE_HINT)
    if not any(_PORT.search(token) for token in tokens + [v for _, v in env]):
        raise UsageError(
            f"{role} {image!r} does not contain $PORT: the local target picks each task's "
            "port and needs the command to listen on it",
            hint=_TEMPLATE_HINT,
        )
    return TaskCommand(image=image, argv=tuple(tokens), env=tuple(env))
