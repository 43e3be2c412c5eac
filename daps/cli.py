"""The `daps` command. Each part of the product adds its sub-command group through the
`daps.commands` entry-point group in pyproject.toml (and single commands through `daps.toplevel`),
so this core imports none of them.

User errors (bad files, wrong checkpoints, bad options) and failures of the file system (no space
left, read-only, a path under a file) end with one line on stderr naming the file or option, and
exit status 2.
"""
from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

app = typer.Typer(
    help="Latent-commanded humanoid control with discrete VAEs trained by policy search (DAPS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """DAPS: discrete autoencoding via policy search, and the H1 control stack built on it."""


def _register_groups() -> None:
    for ep in sorted(entry_points(group="daps.commands"), key=lambda e: e.name):
        app.add_typer(ep.load(), name=ep.name)
    # single top-level commands (e.g. `daps command`), each a plain function
    for ep in sorted(entry_points(group="daps.toplevel"), key=lambda e: e.name):
        app.command(name=ep.name)(ep.load())


def main() -> None:
    """Entry point of the `daps` console script."""
    from daps.trainer import CheckpointError

    _register_groups()
    try:
        app()
    except (CheckpointError, ValueError, OSError) as e:
        typer.echo(f"error: {one_line(e)}", err=True)
        sys.exit(2)


def one_line(e: Exception) -> str:
    """The message of a user-facing error on one line; an OSError that names its file reads
    "FILE: reason" ("runs/x/checkpoint.pt: no space left on device")."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.filename}: {e.strerror[:1].lower()}{e.strerror[1:]}"
    else:
        text = str(e)
    return " ".join(text.split())


if __name__ == "__main__":
    main()
