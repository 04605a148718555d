"""The lab's state file: every resource is written down before it is created.

``hcisim lab down`` works only from this file, the pid files and the lab's directory, so it
can reclaim a lab whose harness was SIGKILLed at any point.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class LabState:
    """A JSON document on disk, rewritten atomically on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self._lock = threading.RLock()  # bring-up steps run in threads

    def save(self) -> None:
        with self._lock:
            tmp = self.path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_text(json.dumps(self.data, indent=2, default=str))
            os.replace(tmp, self.path)

    def get_list(self, key: str) -> list[Any]:
        value = self.data.get(key)
        return list(value) if isinstance(value, list) else []

    def add(self, key: str, item: Any) -> None:
        """Append ``item`` to list ``key`` (once) and save: call it BEFORE creating the thing."""
        with self._lock:
            items = self.get_list(key)
            if item not in items:
                items.append(item)
            self.data[key] = items
            self.save()

    def remove(self, key: str, item: Any) -> None:
        with self._lock:
            self.data[key] = [i for i in self.get_list(key) if i != item]
            self.save()

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self.data[key] = value
            self.save()
