"""Running an iterator ahead of its consumer in a background thread (decoding beside processing)."""
from __future__ import annotations

import queue
import threading
from typing import Iterator


def prefetch(items: Iterator, depth: int = 8) -> Iterator:
    """Run an iterator in a background thread, ``depth`` items ahead (decoding overlaps processing).

    Exceptions raised by the iterator are re-raised in the consumer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a worker waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)
