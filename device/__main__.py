"""`python -m device` is the same program as `voxbox`."""

import sys

from device.cli import main

sys.exit(main())
