"""`python -m gateway.cli`: the same commands as the `gateway` script."""

from gateway.cli import main

main()
