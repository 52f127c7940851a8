"""LiveMoments: reference-guided diffusion restoration of reselected Live Photo frames.

Importing this package registers the `livemoments` restorer with `core.registry`. The heavy
modules (diffusers, the networks) are imported only when a restore or a checkpoint needs them.
"""

from core.livemoments.restorer import LiveMomentsRestorer

__all__ = ["LiveMomentsRestorer"]
