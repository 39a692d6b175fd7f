"""`python -m temporal_shift.cli ...` is `tsm ...` (torchrun starts training this way)."""

import sys

from temporal_shift.cli import main

sys.exit(main())
