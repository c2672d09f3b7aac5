r"""Haze synthesis: clear images -> paired hazy images with known parameters.

Two models:

- **ASM** (natural scenes), the atmospheric scattering model applied by :class:`eid.physics.ASMHaze`:

  .. math:: I = J\,t + A\,(1 - t), \qquad t = \exp(-\beta\, d)

  with depth ``d`` from a depth or disparity file, a vertical ramp or a smooth random field, and
  ``beta``/``A`` fixed or drawn uniformly from ranges (``A`` grey or per channel).

- **Veil** (fluorescence microscopy): out-of-focus light adds a smooth background and costs contrast,

  .. math:: y = \mathrm{clip}_{[0,1]}\big(c\,x + v\,\frac{G_\sigma * x}{\max(G_\sigma * x)} + b\,F\big)

  with contrast ``c``, veil strength ``v``, background ``b``, a Gaussian blur of width
  ``sigma = veil_sigma * min(H, W)`` and a smooth random field ``F`` in ``[0,1]``. The image is read on
  its own intensity scale (``white="max"``: its maximum maps to 1), so 16-bit data stored in a small
  part of the range (e.g. 0..235) is hazed in proportion and written back on the same scale.

Randomness is seeded per image from the global seed and the image's name (:func:`eid.physics.generators.image_seed`), so
results do not depend on processing order or on which other files are present.

:mod:`~eid.synth.image` hazes one image (:func:`synthesize`), :mod:`~eid.synth.folder` a folder of images and
stacks, writing ``hazy/``, ``clear/``, ``depth/`` and ``params.json`` (:func:`synthesize_folder`). The random
parameters come from :mod:`eid.physics.generators`, depth files are read by :mod:`eid.data.depth`.
"""

from eid.synth.folder import SynthReport, synthesize_folder
from eid.synth.image import SynthConfig, synthesize

__all__ = ["SynthConfig", "SynthReport", "synthesize", "synthesize_folder"]
