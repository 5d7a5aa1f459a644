"""Events between Gallery replicas: what a NOTIFY carries (the real LISTEN/NOTIFY path between two
Gallery processes on PostgreSQL is tested in test_gallery_replicas.py)."""

from __future__ import annotations

import json

from gallery.broadcast import MAX_PAYLOAD, libpq_url, notification


def test_an_event_travels_whole_with_its_sender_and_owner():
    event = {"type": "painting.progress", "id": "a" * 32, "iteration": 3, "loss": {"total": 1.5}}
    sent = json.loads(notification("replica-a", event, "f" * 64))
    assert sent == {"sender": "replica-a", "owner": "f" * 64, "event": event}


def test_an_event_too_large_for_a_notify_travels_slim_and_says_so():
    history = [
        {"iteration": i, "weights": {"style_weight": float(i)}, "at": "2026-11-30T00:00:00+00:00"} for i in range(100)
    ]
    event = {"type": "painting.weights", "id": "b" * 32, "params": {"size": 400}, "weight_changes": history}
    text = notification("replica-a", event, None)
    assert len(text.encode()) <= MAX_PAYLOAD
    assert json.loads(text)["event"] == {"type": "painting.weights", "id": "b" * 32, "partial": True}


def test_the_database_url_becomes_a_libpq_one():
    url = "postgresql+psycopg://gallery:s3cret@db.internal:5433/paint"
    assert libpq_url(url) == "postgresql://gallery:s3cret@db.internal:5433/paint"
