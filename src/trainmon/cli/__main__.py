"""``python -m trainmon.cli``: what the tests and benches start instead of the entry point."""

from trainmon.cli import main

main()
