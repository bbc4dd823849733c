"""A tiny eink-llm backend plugin: ``pip install tests/plugin_pkg`` and set ``llm.backend: demo-plugin``."""
