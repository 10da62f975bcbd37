"""Reference experiments: one module each, a frozen config and ``run(config) -> Recording``."""
