"""pycasso: the Gatys et al. style-transfer engine, its port worker and the `paint` CLI.

Import from the module that owns a name; each module's `__all__` is its public face:

    pycasso.port      the framed stdin/stdout protocol (Studio uses it; no TensorFlow)
    pycasso.engine    Engine, Iterate, Losses, PaintResult (imports TensorFlow: seconds)
    pycasso.imaging   decoding (through painting.images' one rule), resizing, VGG pre/de-processing
    pycasso.errors    the engine's errors, each with the `code` its error frames carry
    pycasso.calibration  the worker's timing of itself and its memory, for Studio's estimates
    pycasso.cli       `deep-painting paint`;  pycasso.worker: `python -m pycasso`

The package itself imports nothing, so Studio's `pycasso.port` never pulls in the engine.
"""

__version__ = "0.1.0"
