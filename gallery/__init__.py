"""gallery: the web app people use. Browser API under /api, WebSocket /ws, the page at /.

Public face: `create_app` (gallery.app), `GallerySettings` (gallery.settings), `StudioClient`
(gallery.studio_client) and the errors (gallery.errors). Gallery knows Studio only over HTTP: it
never imports `studio` or `pycasso`, so its process never loads TensorFlow.
"""
