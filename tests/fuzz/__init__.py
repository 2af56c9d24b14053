"""Bad input: property-based tests (hypothesis) of the spec parser, the dataset loader, answer
grading and the store's text encoding. `TTSCALE_FUZZ_EXAMPLES=5000` runs each property longer
than the default suite does (200 examples)."""

import os


def fuzz_examples(default: int = 200) -> int:
    return int(os.environ.get("TTSCALE_FUZZ_EXAMPLES") or default)
