"""Rendering `deploy --dry-run`: the parameters and resources a deploy would change."""

from __future__ import annotations

from rich.table import Table

from canary_deploy.cli.output import console, print_json, warn
from canary_deploy.preview import Preview


def show_preview(preview: Preview, output: str) -> None:
    """The preview as tables (text) or one JSON document; nothing was changed either way."""
    if output == "json":
        print_json(preview.to_dict())
        return
    verb = "create" if preview.operation == "create" else "update"
    console.print(
        f"Dry run: a deploy would {verb} {preview.stack_name} ({preview.target}); "
        "nothing was changed.",
        markup=False,
        soft_wrap=True,
    )
    if preview.parameters:
        table = _table("Parameters", "parameter", "now", "after the deploy")
        for p in preview.parameters:
            table.add_row(p.name, "-" if p.before is None else p.before, p.after)
        console.print(table)
    if preview.resources:
        console.print(_resources_table(preview))
    if preview.not_computed:
        warn(preview.not_computed)  # the resources are unknown: worth the operator's attention
    for note in preview.notes:
        console.print(f"({note})", style="dim", markup=False, soft_wrap=True)
    if not preview.parameters and not preview.resources and not preview.not_computed:
        console.print("No changes.", markup=False)


def _resources_table(preview: Preview) -> Table:
    table = _table("Resources", "action", "logical id", "type", "replacement", "caused by")
    for r in preview.resources or ():
        table.add_row(
            r.action,
            r.logical_id,
            r.resource_type,
            r.replacement or "-",
            "\n".join(r.causes) or "-",
        )
    return table


def _table(title: str, *columns: str) -> Table:
    """Long values (image URIs, subnet lists) wrap instead of being cut off."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table
