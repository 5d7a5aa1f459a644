"""studio: the service beside the GPU. It takes jobs over HTTP and supervises the Pycasso worker.

Public face: `create_app` (studio.app), `StudioSettings` (studio.settings), `Supervisor`
(studio.supervisor), `Jobs` (studio.jobs) and the errors (studio.errors). Studio never imports
TensorFlow: the engine runs in a `python -m pycasso` child process spoken to with `pycasso.port`.
"""
