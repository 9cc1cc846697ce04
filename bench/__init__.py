"""The bench: the load generator, raw stage floors and plain baselines behind ``tripwire bench``."""
