"""`python -m yamflash` runs the CLI."""

import sys

from yamflash.cli import main

sys.exit(main())
