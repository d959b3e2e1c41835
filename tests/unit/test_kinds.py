"""Job kinds are declared once (service/kinds.py); everything else derives from there."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from prover.config import Settings
from prover.service import grants
from prover.service.kinds import KINDS, QUEUES, job_kind
from prover.worker.app import WEBHOOK_QUEUE, make_app, time_limit

PACKAGE = Path(__file__).resolve().parents[2] / "prover"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_has_a_queue_a_runner_and_an_ending(name: str) -> None:
    kind = KINDS[name]
    assert kind.name == name
    assert kind.queue in QUEUES
    assert callable(kind.runner) and callable(kind.on_end)
    assert kind.subject in typing.get_args(grants.SubjectType)
    assert time_limit(Settings(), kind.queue) > 0


def test_the_broker_listens_on_every_declared_queue() -> None:
    """The job kinds' queues, and the webhook deliveries' own."""
    app = make_app(Settings())
    assert {queue.name for queue in app.conf.task_queues} == {*QUEUES, WEBHOOK_QUEUE}


def test_an_undeclared_kind_is_refused_by_name() -> None:
    with pytest.raises(Exception, match="not declared"):
        job_kind("no_such_kind")


def _kind_arguments() -> set[str]:
    """Every string literal the package passes as a parameter named ``kind`` to one of its
    own functions (``new_job(session, "prove", ...)``, ``submit_chain_job(..., "deploy",
    ...)``): the kinds the code can create."""
    trees = [ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")]
    params = {
        node.name: [a.arg for a in node.args.args]
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
    }
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            callee = getattr(node.func, "attr", getattr(node.func, "id", None))
            passed = dict(zip(params.get(callee or "", []), node.args, strict=False))
            passed.update({k.arg: k.value for k in node.keywords if k.arg})
            value = passed.get("kind")
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                names.add(value.value)
    return names


def test_every_kind_the_service_creates_is_declared() -> None:
    created = _kind_arguments()
    assert {"compile", "prove", "train_step"} <= created, "the check reads the wrong calls"
    assert created <= set(KINDS)
