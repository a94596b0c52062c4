"""`python -m adrcs.cli`."""
from adrcs.cli import main

main()
