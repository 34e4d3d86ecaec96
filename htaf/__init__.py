"""htaf: HTAF, a sigmoid-tanh composite approximation of the Heaviside step, for learning binary units.

``HTAF_{alpha,beta}(x) = sigmoid(alpha * tanh(beta * x))``. Modules follow PyTorch's split:

* :mod:`htaf.functional`: ``htaf``, ``htaf_grad``, ``htaf_sign``, ``heaviside``, ``sign``, ``spike``, ``sign_spike``
* :mod:`htaf.nn`: ``HTAF``, ``Spike``, ``use_mode``
* :mod:`htaf.surrogates`: the surrogate-gradient zoo (``get``, ``available``)
"""

from . import functional, nn, surrogates

__version__ = "0.1.0"

__all__ = ["functional", "nn", "surrogates", "__version__"]
