"""`canary route add|list|delete`: pin testers to a version by header or cookie."""

from __future__ import annotations

from typing import Annotated

import typer

from canary_deploy import usecases
from canary_deploy.cli.app import OutputOpt, app, settings_from
from canary_deploy.cli.output import console, print_json
from canary_deploy.errors import UsageError
from canary_deploy.routes import RouteMatch, TesterRoute, group_named
from canary_deploy.targets import open_target

route_app = typer.Typer(
    help="Route testers to a version by header or cookie: listener rules evaluated "
    "before the weights; their requests are counted apart and never judged.",
    no_args_is_help=True,
)
app.add_typer(route_app, name="route")

HeaderOpt = Annotated[
    str | None,
    typer.Option("--header", help="NAME=VALUE: a header and its value (ALB's * and ? wildcards)."),
]
CookieOpt = Annotated[
    str | None, typer.Option("--cookie", help="NAME=VALUE: a cookie with exactly this value.")
]


def _match(header: str | None, cookie: str | None, *, required: bool) -> RouteMatch | None:
    if header is not None and cookie is not None:
        raise UsageError("give --header or --cookie, not both", hint="one condition per route")
    if header is not None:
        return RouteMatch.parse("header", header)
    if cookie is not None:
        return RouteMatch.parse("cookie", cookie)
    if required:
        raise UsageError(
            "a route needs --header NAME=VALUE or --cookie NAME=VALUE",
            hint="e.g. `canary route add --header X-Canary=always --to canary`",
        )
    return None


@route_app.command("add")
def add(
    ctx: typer.Context,
    header: HeaderOpt = None,
    cookie: CookieOpt = None,
    to: Annotated[
        str | None, typer.Option("--to", help="The target group: stable, canary or baseline.")
    ] = None,
    output: OutputOpt = "text",
) -> None:
    """Send requests carrying this header (or cookie) to one target group, whatever the
    weights; `set-weights` and `rollback` never touch the route."""
    match = _match(header, cookie, required=True)
    assert match is not None
    if to is None:
        raise UsageError("route add needs --to", hint="--to stable, canary or baseline")
    group = group_named(to)
    route = usecases.add_route(open_target(settings_from(ctx)), match, group)
    if output == "json":
        print_json(route.to_dict())
        return
    console.print(f"Added tester route {route}", markup=False)
    if match.kind == "header":
        example = f"curl -H '{match.name}: {match.value}' <listener URL>"
    else:
        example = f"curl -b '{match.name}={match.value}' <listener URL>"
    console.print(
        f"Testers reach {group} with `{example}`; their requests are counted apart "
        "and never judged.",
        markup=False,
    )


@route_app.command("list")
def list_(ctx: typer.Context, output: OutputOpt = "text") -> None:
    """The tester routes, in the order the listener evaluates them."""
    routes = usecases.list_routes(open_target(settings_from(ctx)))
    if output == "json":
        print_json([r.to_dict() for r in routes])
        return
    if not routes:
        console.print("No tester routes: every request follows the weights.", markup=False)
        return
    console.print(_table(routes), markup=False)


@route_app.command("delete")
def delete(
    ctx: typer.Context,
    route_id: Annotated[
        str | None, typer.Argument(help="The route's id (its priority in `route list`).")
    ] = None,
    header: HeaderOpt = None,
    cookie: CookieOpt = None,
    output: OutputOpt = "text",
) -> None:
    """Remove a tester route, named by its id or by the same --header/--cookie."""
    match = _match(header, cookie, required=False)
    if (route_id is None) == (match is None):
        raise UsageError(
            "name the route to delete by its id or by its --header/--cookie (one of them)",
            hint="`canary route list` shows them, e.g. `canary route delete 1`",
        )
    which: str | RouteMatch | None = match or route_id
    assert which is not None
    route = usecases.delete_route(open_target(settings_from(ctx)), which)
    if output == "json":
        print_json(route.to_dict())
        return
    console.print(f"Deleted tester route {route}", markup=False)


def _table(routes: list[TesterRoute]) -> str:
    rows = [("ID", "MATCH", "TO")] + [(str(r.priority), str(r.match), r.to) for r in routes]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
