"""``python -m vita_grasp_core.cli`` = ``vita-grasp``."""
import sys

from . import main

sys.exit(main())
