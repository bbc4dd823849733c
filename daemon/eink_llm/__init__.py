"""eink-llm: answer handwritten questions from an e-ink tablet's synced folder."""

__version__ = "0.1.0"
