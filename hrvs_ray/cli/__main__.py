"""``python -m hrvs_ray.cli``: the same command line as ``hrvs-ray``."""
import sys

from . import main

sys.exit(main())
