"""Reading the file parts of a multipart request."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from prover.errors import InvalidInputError


def saved_model(upload: UploadFile, folder: Path) -> Path:
    """An uploaded model written to ``folder`` under its (sanitised) name: the name is kept
    because the model's record shows it, and sanitised because the client chose it."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(upload.filename or "model.onnx").name)
    path = folder / (name.lstrip(".") or "model.onnx")
    path.write_bytes(upload.file.read())
    return path


def json_part(upload: UploadFile, part: str) -> Any:
    """A JSON file part of a multipart request; ``InvalidInputError`` naming the part."""
    try:
        return json.loads(upload.file.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"the {part!r} file is not valid JSON: {exc}") from exc
