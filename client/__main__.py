"""`python -m client` is the `imgjobs` command."""

from client.cli import main

main(prog_name="imgjobs")
