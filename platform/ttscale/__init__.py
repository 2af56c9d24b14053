"""ttscale: test-time compute scaling experiments for language models."""

__version__ = "0.1.0"
