"""``python -m byzbench.report SWEEP_DIR``."""

from byzbench.report.cli import main

main()
