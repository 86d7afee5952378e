"""`python -m rnnc` runs the CLI (also how torchrun starts workers)."""

import os
import sys

from rnnc.cli import main

status = main()
if "TORCHELASTIC_RUN_ID" in os.environ:
    # A torchrun worker leaves without interpreter finalization: its process group is
    # already destroyed, but gloo's C++ threads can still hold work objects whose
    # teardown during finalization aborts the process ("terminate called without an
    # active exception", exit -6) after a run that succeeded.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
raise SystemExit(status)
