"""painting: the storage library both services use, and the shared painting parameters.

Public face: `Params` (painting.params). The image store and the catalog are added by their issue.
"""

from painting.params import Params

__all__ = ["Params"]
