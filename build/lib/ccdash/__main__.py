"""`python -m ccdash`: the same as the `ccdash` command."""

from ccdash.cli import main

raise SystemExit(main())
