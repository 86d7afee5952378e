"""`python -m rnnc` runs the CLI (also how torchrun starts workers)."""

from rnnc.cli import main

raise SystemExit(main())
