"""gallery: the web app people use. Browser API under /api, WebSocket /ws, the page at /.

Public face: `create_app` (gallery.app), `GallerySettings` (gallery.settings), `StudioClient`
(gallery.studio_client) and the errors (gallery.errors). Inside: the routes (gallery.routes, and
gallery.training_routes for trainings) take the running service (gallery.state); the dispatcher
(gallery.dispatcher) takes paintings to Studio, the training follower (gallery.trainings) trainings,
whose uploaded images gallery.training_sets checks and keeps until Studio has them;
gallery.owners says who may change a painting, gallery.limits how many at once, gallery.guard keeps
other websites out. Gallery knows Studio only over HTTP: it never imports `studio` or `pycasso`, so
its process never loads TensorFlow.
"""
