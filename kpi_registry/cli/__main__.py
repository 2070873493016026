"""``python -m kpi_registry.cli``: the `kpi` command (``kpi site serve`` runs its builds so)."""

import sys

from . import main

sys.exit(main())
