"""The CLI reference as Markdown, generated from the Typer app itself, so the documentation cannot go stale.

The documentation site builds ``reference/cli.md`` from :func:`cli_markdown` (``docs/hooks.py``); every
command, argument and option there is what ``medsr COMMAND --help`` shows.
"""

from __future__ import annotations

from typing import Any

import typer.main


def _text(text: object) -> str:
    """Help text as Markdown text: brackets escaped, so ``[sha256=HEX]`` is not read as a link."""
    return str(text or "").replace("[", "\\[").replace("]", "\\]")


def _cell(text: object) -> str:
    return " ".join(_text(text).split()).replace("|", "\\|")


def _kind(param: Any) -> str:
    """The value type a parameter takes, under click's names and under Typer's own (Typer >= 0.2x)."""
    if getattr(param, "is_flag", False):
        return "flag"
    if getattr(param, "type", None) is not None:
        return str(param.type.name)
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return getattr(annotation, "__name__", str(annotation or "")).replace("typing.", "")


def _param_row(param: Any) -> str:
    if param.param_type_name == "option":
        names = ", ".join(f"`{name}`" for name in [*param.opts, *param.secondary_opts])
        default = param.default
        if default in (None, "", ()) or callable(default) or param.show_default is False or (
                getattr(param, "is_flag", False) and not param.secondary_opts):
            default = ""
    else:
        names, default = f"`{(param.metavar or param.name).upper()}`", ""
    return f"| {names} | {_cell(_kind(param))} | {_cell(getattr(param, 'help', ''))} | {_cell(default)} |"


def command_markdown(name: str, command: Any) -> str:
    """One command's section: usage, help, and a table of its arguments and options."""
    context = command.context_class(command, info_name=f"medsr {name}")
    lines = [f"## medsr {name}", "", "```", command.get_usage(context).strip(), "```", "",
             _text(command.help).strip(), ""]
    params = [p for p in command.params if not getattr(p, "hidden", False) and p.name != "help"]
    if params:
        lines += ["| argument / option | type | what | default |", "|---|---|---|---|",
                  *[_param_row(p) for p in params], ""]
    return "\n".join(lines)


def cli_markdown() -> str:
    """The whole CLI reference page: ``medsr --help``'s commands, in order, each with every option."""
    from medsr.cli import app

    group = typer.main.get_command(app)
    context = group.context_class(group, info_name="medsr")
    names = group.list_commands(context)
    lines = ["# Command-line reference", "",
             "Generated from the `medsr` command itself when the documentation is built; `medsr COMMAND --help` "
             "prints the same.", "", "| command | what it does |", "|---|---|"]
    lines += [f"| [`medsr {n}`](#medsr-{n}) | {_cell(group.get_command(context, n).get_short_help_str(200))} |"
              for n in names]
    lines.append("")
    lines += [command_markdown(n, group.get_command(context, n)) for n in names]
    return "\n".join(lines)
