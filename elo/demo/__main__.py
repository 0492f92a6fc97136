"""``python -m elo.demo`` (what ``make demo`` runs): :func:`elo.demo.driver.main`."""

import sys

from elo.demo.driver import main

if __name__ == "__main__":
    sys.exit(main())
