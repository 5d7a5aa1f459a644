"""TensorFlow, configured once for the engine: every pycasso module that needs TF imports it here.

It is also where a missing engine extra (TensorFlow, scipy) becomes one clear error.

Both settings make a run reproducible (the same seed, parameters and machine give the same pixels,
also in another process) and were measured to cost nothing at 400×533 on the 2-core CPU:

- One inter-op thread. With several, independent ops (a Gram beside the next convolution) run at
  the same time and share the intra-op pool; the split of work changes from call to call and float
  sums come out in another order (two identical evaluations' gradients differed by 1 in 8.5e6).
- No Grappler arithmetic optimisation. It regroups the sum of gradients that reach the pixels (the
  network's and the total-variation term's) into one AddN whose operand order differs from one
  process to the next, so two processes painting the same thing drifted apart by a few grey levels.
"""

import logging

from pycasso.errors import EngineNotInstalled

try:  # the engine extra: TensorFlow, and scipy for L-BFGS-B
    import tensorflow as tf
    from scipy import optimize
except ImportError as exc:  # a services-only install (`pip install deep-painting`, the Gallery image)
    raise EngineNotInstalled(
        f"the painting engine is not installed here ({exc.name or 'tensorflow'} is missing): "
        "pip install 'deep-painting[engine]' (or '[gpu]' on a CUDA host)"
    ) from exc

tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
try:
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:  # the runtime was started before pycasso was imported: keep what it has
    if tf.config.threading.get_inter_op_parallelism_threads() != 1:
        logging.getLogger("pycasso").warning(
            "TensorFlow was initialised before pycasso: inter-op threads stay at %s, runs may not be reproducible",
            tf.config.threading.get_inter_op_parallelism_threads(),
        )

__all__ = ["optimize", "tf"]
