"""`python -m eink_llm` is the same as the `eink-llm` command."""

from eink_llm.cli import main

raise SystemExit(main())
