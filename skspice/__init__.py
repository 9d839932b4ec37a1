"""skspice: SPICE deep image clustering as a scikit-learn estimator."""

import logging

from .estimator import SPICEClustering

# A library leaves logging configuration to the application (logging HOWTO).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = ["SPICEClustering", "__version__"]
