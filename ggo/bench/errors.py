"""What the bench raises before anything is timed."""


class BenchConfigError(ValueError):
    """A bench option that cannot run: a ``--set`` that does not compose or validate, a missing
    baseline checkout. Raised before anything is timed."""
