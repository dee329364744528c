"""hpsearch's engine: data, the training objective, studies, export, reports and the CLI."""
from __future__ import annotations
