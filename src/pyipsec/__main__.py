"""``python -m pyipsec``: the ``pyipsec`` command."""

import sys

from pyipsec.cli.main import main

sys.exit(main())
