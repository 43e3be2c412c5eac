"""Command-line options that several `daps` groups share, defined once (typer `Option`s: give one as
a parameter's default, e.g. ``data: Optional[Path] = LAFAN1_DATA``)."""
from __future__ import annotations

import typer

LAFAN1_DATA = typer.Option(None, "--data", help="LAFAN1-H1 root (holding h1/*.csv); default $DAPS_LAFAN1_DIR or ../shared/data/lafan1_h1.")
DEVICE = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda.")
