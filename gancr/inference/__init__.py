"""Using a trained run: load it (read once), stylise images of any size, strength, tiling, export.

- :mod:`~gancr.inference.load`: :func:`open_run`, :func:`load_generator`, :func:`load_content_net`;
- :mod:`~gancr.inference.stylize`: :func:`stylize` (files), :func:`stylize_tensor` (tensors), their
  :class:`StylizeOptions`, :func:`fastest_precision`;
- :mod:`~gancr.inference.strength`: ``alpha`` between the input photograph and the full style;
- :mod:`~gancr.inference.tiling`: big images in overlapping tiles, in bounded memory;
- :mod:`~gancr.inference.export`: the generator alone as ONNX, TorchScript or safetensors.
"""

from gancr.inference.load import Run, load_content_net, load_generator, open_run
from gancr.inference.strength import StrengthBlend, check_alpha
from gancr.inference.stylize import Stylized, StylizeOptions, fastest_precision, stylize, stylize_tensor

__all__ = [
    "Run",
    "open_run",
    "load_generator",
    "load_content_net",
    "stylize",
    "stylize_tensor",
    "StylizeOptions",
    "Stylized",
    "fastest_precision",
    "StrengthBlend",
    "check_alpha",
]
