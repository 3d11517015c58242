"""revy: revision control for Django models.

`revy.Context` is framework-free; the Django integration lives in `revy.contrib.django`.
"""

from revy.context import Context

__all__ = ["Context"]
__version__ = "0.1.0"
