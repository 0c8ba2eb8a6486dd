"""The server's model store: trained models on disk, and the loaded ones in memory.

One folder (``--models DIR``, else ``$SHOTSTYLE_MODELS_DIR``, else the user's data folder)
holds ``<name>.safetensors`` files, so models survive restarts. Names are checked against a
strict pattern matched against the whole name (no path separators, no ``..``, no newline).
Uploads are checked by the one model loader (`modelfile.check_model_bytes`) that later loads
them, then stored as sent. Loaded models are kept in an LRU cache under a memory budget; the
least recently used ones are dropped first.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import torch

from shotstyle.plugin.quoting import brief
from shotstyle.server.engine.modelfile import StyleModel, check_model_bytes, load_model, model_to_bytes, write_atomically
from shotstyle.server.engine.modelheader import MODEL_SUFFIX, read_metadata, recorded_hash
from shotstyle.server.errors import ShotstyleError, StoreError
from shotstyle.plugin.userdirs import user_folder

# Matched with fullmatch: "$" would also match before a trailing newline.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
DEFAULT_MEMORY_BUDGET = 2 << 30  # bytes of loaded weights kept in memory


def default_models_dir() -> str:
    return user_folder("data", "models", "SHOTSTYLE_MODELS_DIR")


def check_name(name: Any) -> str:
    """``name`` if it is a valid model name, else StoreError(bad_argument) saying what is allowed."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise StoreError("bad_argument", f"invalid model name {brief(name)}: use 1-128 letters, digits, '_', '-' or "
                                         "'.', starting with a letter or digit, without '..'")
    return name


def _weights_bytes(model: StyleModel) -> int:
    return sum(t.numel() * t.element_size() for t in model.network.state_dict().values())


class ModelStore:
    """Models on disk plus an LRU of loaded ones; safe to use from several threads."""

    def __init__(self, folder: Optional[str] = None, device: str | torch.device = "cpu",
                 memory_budget: int = DEFAULT_MEMORY_BUDGET):
        self.folder = folder or default_models_dir()
        os.makedirs(self.folder, exist_ok=True)
        self.device = device
        self.memory_budget = memory_budget
        self._loaded: "OrderedDict[str, tuple[str, StyleModel, int]]" = OrderedDict()  # name -> (mtime key, model, bytes)
        self._lock = threading.RLock()

    def path(self, name: str) -> str:
        return os.path.join(self.folder, check_name(name) + MODEL_SUFFIX)

    def _existing(self, name: str) -> str:
        path = self.path(name)
        if not os.path.isfile(path):
            raise StoreError("unknown_model", f"no model {name!r} in the store {self.folder}; "
                                              f"known: {', '.join(self.names()) or 'none'}")
        return path

    def names(self) -> List[str]:
        return sorted(f[: -len(MODEL_SUFFIX)] for f in os.listdir(self.folder)
                      if f.endswith(MODEL_SUFFIX) and NAME_PATTERN.fullmatch(f[: -len(MODEL_SUFFIX)]))

    def describe(self, name: str) -> Dict[str, Any]:
        """Name, size, hash and metadata, read from the file header (the weights are not read)."""
        path = self._existing(name)
        metadata = read_metadata(path)
        return {"name": name, "size": os.path.getsize(path), "hash": metadata.get("checksum"), "metadata": metadata}

    def list(self) -> List[Dict[str, Any]]:
        result = []
        for name in self.names():
            try:
                result.append(self.describe(name))
            except ShotstyleError as exc:
                result.append({"name": name, "error": str(exc)})
        return result

    def get(self, name: str) -> StyleModel:
        """The loaded model (from the cache, or loaded from disk now)."""
        path = self._existing(name)
        key = f"{os.stat(path).st_mtime_ns}:{os.stat(path).st_size}"
        with self._lock:
            cached = self._loaded.get(name)
            if cached is not None and cached[0] == key:
                self._loaded.move_to_end(name)
                return cached[1]
        model = load_model(path, device=self.device)
        with self._lock:
            self._loaded[name] = (key, model, _weights_bytes(model))
            self._loaded.move_to_end(name)
            while len(self._loaded) > 1 and sum(size for _, _, size in self._loaded.values()) > self.memory_budget:
                self._loaded.popitem(last=False)
        return model

    def loaded(self) -> List[str]:
        with self._lock:
            return list(self._loaded)

    def write(self, name: str, data: bytes | memoryview, replace: bool = True) -> None:
        """Store the model file ``data`` under ``name`` (atomic).

        ``replace`` False: only if no model of that name exists at the moment of writing (the
        check and the write are one filesystem operation), else StoreError(forbidden). A write the
        system refuses (a full disk, no permission) is StoreError(io_error) naming the folder.
        """
        try:
            write_atomically(self.path(name), data, replace=replace)
        except FileExistsError:
            raise StoreError("forbidden", f"model {name!r} was stored by another request meanwhile; replacing it "
                                          "needs the server owner's authority: use another name") from None
        except OSError as exc:
            raise StoreError("io_error", f"the model store {self.folder} cannot keep model {name!r} "
                                         f"({exc.strerror or exc}); free space there, or start the server with "
                                         "another --models folder") from None
        with self._lock:
            self._loaded.pop(name, None)

    def put(self, name: str, model: StyleModel, replace: bool = True) -> str:
        """Save ``model`` under ``name`` (as `write`); returns its hash."""
        self.write(name, model_to_bytes(model), replace)
        return model.hash

    def put_bytes(self, name: str, data: bytes | memoryview, replace: bool = True) -> str:
        """Check an uploaded model file (never unpickled) as a load would, and store it as sent (as `write`);
        its hash."""
        check_model_bytes(data, name=f"uploaded model {name!r}")
        self.write(name, data, replace)
        path = self.path(name)
        return recorded_hash(read_metadata(path), path)

    def read_bytes(self, name: str) -> bytes:
        with open(self._existing(name), "rb") as handle:
            return handle.read()

    def delete(self, name: str) -> None:
        path = self._existing(name)
        with self._lock:
            self._loaded.pop(name, None)
        os.remove(path)
