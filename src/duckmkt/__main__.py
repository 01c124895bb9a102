"""Allow ``python -m duckmkt``."""

from duckmkt.cli import main

main()
