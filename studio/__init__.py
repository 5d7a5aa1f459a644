"""studio: the service beside the GPU. It takes jobs over HTTP and supervises the Pycasso worker.

Public face: `create_app` (studio.app), `StudioSettings` (studio.settings), `Supervisor`
(studio.supervisor), `Jobs` (studio.jobs) and the errors (studio.errors). Inside: the routes
(studio.routes) take the running service (studio.state); a job's event stream is studio.events, what
worker messages mean for a job studio.runner. Trainings (issue 15) are jobs of another kind on the
same workers: their requests studio.trainings, their event stream studio.training_events, their runs
studio.training_runner (which also routes each job id to its runner). Studio never imports
TensorFlow: the engine runs in a `python -m pycasso` child process spoken to with `pycasso.port`.
"""
