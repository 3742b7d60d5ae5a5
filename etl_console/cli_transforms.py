"""etl-console transforms: the installed transforms PYTHON pipelines may use, with docs and config schemas."""
from __future__ import annotations

import json
import textwrap

import click


@click.command("transforms")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON (what GET /api/v1/transforms answers).")
def transforms(as_json: bool) -> None:
    """List installed transforms (entry-point group etl_console.transforms)."""
    from .transforms import describe_transforms

    described = describe_transforms()
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for transform in described:
        click.echo(f"{transform['kind']}  ({transform['source']})")
        click.echo(textwrap.indent(transform["doc"] or "(no description)", "    "))
        schema = transform["config_schema"]
        if not schema["properties"]:
            click.echo("    config: none")
        for name, field in schema["properties"].items():
            facts = [field["type"]]
            if name in schema["required"]:
                facts.append("required")
            if "default" in field:
                facts.append(f"default {json.dumps(field['default'])}")
            if "enum" in field:
                facts.append("one of " + ", ".join(map(str, field["enum"])))
            description = f" - {field['description']}" if field.get("description") else ""
            click.echo(f"    config.{name}: {'; '.join(facts)}{description}")
        click.echo()
