"""``python -m imc_sim.cli``: the ``imc-sim`` command, for an environment whose scripts are not on PATH."""

import sys

from imc_sim.cli import main

sys.exit(main())
