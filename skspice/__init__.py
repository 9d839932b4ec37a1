"""skspice: SPICE deep image clustering as a scikit-learn estimator."""

from .estimator import SPICEClustering

__version__ = "0.1.0"

__all__ = ["SPICEClustering", "__version__"]
