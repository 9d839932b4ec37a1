"""Shared estimator settings for the test suite: few epochs, tiny batches."""

#: Every stage runs, briefly: a fit on ~100 digits takes a few seconds.
QUICK = dict(
    feature_epochs=1,
    self_epochs=1,
    semi_epochs=1,
    batch_size=16,
    n_heads=2,
    random_state=0,
    device="cpu",
)


def quick_params(**overrides):
    """``QUICK`` with some settings replaced."""
    return {**QUICK, **overrides}
