"""Shared by the example models: scikit-learn's bundled 8x8 digits, training, artifacts.

The digits set ships inside scikit-learn, so the examples train offline.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from prover.circuits.export import export_onnx

CALIBRATION_SAMPLES = 32


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, x_test, y_train, y_test); pixels scaled to [0, 1], fixed split."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    return train_test_split(x, data.target, test_size=0.25, random_state=0, stratify=data.target)


def train(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    shape: tuple[int, ...],
    epochs: int = 60,
    lr: float = 0.01,
    weight_decay: float = 0.0,
) -> torch.nn.Module:
    """AdamW on minibatches of 64; deterministic for a given seed.

    Weight decay keeps activations small, which shrinks the lookup tables of
    non-linearities such as softmax's exp, and so the circuit.
    """
    torch.manual_seed(0)
    xt = torch.from_numpy(x).reshape(-1, *shape)
    yt = torch.from_numpy(y).long()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model.eval()


def float_accuracy(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]
) -> float:
    with torch.no_grad():
        pred = model(torch.from_numpy(x).reshape(-1, *shape)).argmax(-1).numpy()
    return float((pred == y).mean())


def write_example(
    directory: Path,
    model: torch.nn.Module,
    shape: tuple[int, ...],
    epochs: int = 60,
    weight_decay: float = 0.0,
    dynamic_batch: str | None = None,
) -> dict:
    """Train-time artifacts of an example: model.onnx, calibration.json, input.json, metrics.

    ``dynamic_batch``: export as users usually do, with a dynamic batch axis of that name
    (inputs "image", outputs "logits"), instead of the product's fixed-shape export."""
    x_train, x_test, y_train, y_test = digits_split()
    torch.manual_seed(0)
    train(model, x_train, y_train, shape, epochs=epochs, weight_decay=weight_decay)
    if dynamic_batch is None:
        export_onnx(model, torch.zeros(1, *shape), directory / "model.onnx")
    else:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.zeros(1, *shape),),
                str(directory / "model.onnx"),
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={"image": {0: dynamic_batch}, "logits": {0: dynamic_batch}},
                opset_version=17,
                dynamo=False,
            )
    calibration = x_train[:CALIBRATION_SAMPLES].reshape(-1).tolist()
    (directory / "calibration.json").write_text(json.dumps({"input_data": [calibration]}))
    (directory / "input.json").write_text(json.dumps({"input_data": [x_test[0].tolist()]}))
    metrics = {
        "float_test_accuracy": round(float_accuracy(model, x_test, y_test, shape), 4),
        "test_samples": len(y_test),
        "input_shape": [1, *shape],
        "sample_label": int(y_test[0]),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
