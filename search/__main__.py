"""`python -m search` is the hpsearch command."""
from __future__ import annotations

from search.cli import main

main()
