"""Options where hands put them: `canary deploy --listen ...` and `canary -o json status`
mean what they say, as `git -C` and `aws --region` users expect.

Click reads a group's options only before the command name and a command's only after
it. Before parsing, global options written after the command move in front of it, and
a command's `-o/--output` written before it moves behind it — unless the command has an
option of that name itself (`canary balancer --listen` is the balancer's own).
"""

from __future__ import annotations

from typing import Any

# Typer carries its own copy of click: parameters are checked by what they say, not by
# their class.
Command = Any


def _takes_value(param: Any) -> bool:
    return bool(
        param.param_type_name == "option"
        and not getattr(param, "is_flag", False)
        and not getattr(param, "count", False)
    )


def _valued_options(command: Command) -> set[str]:
    return {opt for p in command.params if _takes_value(p) for opt in p.opts}


def _all_options(command: Command) -> set[str]:
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def _split(token: str) -> tuple[str, str | None]:
    """`--name=value` -> ("--name", "value"); anything else -> (token, None)."""
    if token.startswith("--") and "=" in token:
        name, _, value = token.partition("=")
        return name, value
    return token, None


def _take(args: list[str], i: int, valued: set[str]) -> tuple[list[str], int]:
    """The option at args[i] with its value (if it takes one); the index after it."""
    name, inline = _split(args[i])
    if name in valued and inline is None and i + 1 < len(args):
        return args[i : i + 2], i + 2
    return args[i : i + 1], i + 1


def reorder(group: Command, argv: list[str]) -> list[str]:
    """`argv` with options moved to the side of the command name where click reads them.

    >>> import typer
    >>> app = typer.Typer()
    >>> @app.callback()
    ... def top(listen: str = "") -> None: ...
    >>> @app.command()
    ... def status(output: str = typer.Option("text", "-o", "--output")) -> None: ...
    >>> @app.command()
    ... def other() -> None: ...
    >>> g = typer.main.get_group(app)
    >>> reorder(g, ["status", "--listen", "h:1", "-o", "json"])
    ['--listen', 'h:1', 'status', '-o', 'json']
    >>> reorder(g, ["-o", "json", "--listen=h:1", "status"])
    ['--listen=h:1', 'status', '-o', 'json']
    """
    global_valued = _valued_options(group)
    global_all = _all_options(group)
    before: list[str] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        taken, i = _take(argv, i, global_valued | {"-o", "--output"})
        before += taken
    if i >= len(argv) or argv[i] == "--":
        return argv
    name = argv[i]
    command = getattr(group, "commands", {}).get(name)
    if command is None:
        return argv  # click says the command does not exist
    own = _all_options(command)
    own_valued = _valued_options(command)
    front: list[list[str]] = []
    back: list[list[str]] = []
    j = 0
    while j < len(before):  # options given before the command: the command's go behind
        taken, j = _take(before, j, global_valued | own_valued)
        opt = _split(taken[0])[0]
        (back if opt in own and opt not in global_all else front).append(taken)
    globals_after, after = _after_command(argv[i + 1 :], own, own_valued, global_all, global_valued)
    front += globals_after
    return [t for part in front for t in part] + [name] + [t for part in back for t in part] + after


def _after_command(
    rest: list[str],
    own: set[str],
    own_valued: set[str],
    global_all: set[str],
    global_valued: set[str],
) -> tuple[list[list[str]], list[str]]:
    """The arguments after the command's name, split: the global options among them
    (with their values), and everything else in order (`--` ends the options)."""
    front: list[list[str]] = []
    after: list[str] = []
    k = 0
    while k < len(rest):
        if rest[k] == "--":
            after += rest[k:]
            break
        opt = _split(rest[k])[0]
        missing_value = opt in global_valued and "=" not in rest[k] and k + 1 == len(rest)
        if opt in global_all and opt not in own and not missing_value:
            taken, k = _take(rest, k, global_valued)
            front.append(taken)
        elif rest[k].startswith("-"):
            taken, k = _take(rest, k, own_valued)
            after += taken
        else:
            after.append(rest[k])
            k += 1
    return front, after
