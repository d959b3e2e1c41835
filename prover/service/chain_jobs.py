"""Accepting a chain job: a deploy of a ready circuit's verifier, or a submission of a
ready proof's result."""

from __future__ import annotations

from typing import Any, Literal

from prover.config import Settings
from prover.service import grants, jobs
from prover.service.accepting import Accepted, not_ready
from prover.service.db import session_scope
from prover.service.grants import SubjectType
from prover.service.tables import Circuit, Proof
from prover.store import ArtifactStore


def submit_chain_job(
    settings: Settings,
    store: ArtifactStore,
    owner: str,
    kind: Literal["deploy", "submit"],
    subject_id: str,
    params: dict[str, Any],
) -> Accepted:
    """A deploy (subject: a ready circuit) or submit (subject: a ready proof) job."""
    db_url = settings.sqlalchemy_url()
    table: type[Circuit] | type[Proof]
    what: SubjectType
    table, what = (Circuit, "circuit") if kind == "deploy" else (Proof, "proof")
    with session_scope(db_url) as session:
        row = grants.visible_row(session, owner, what, table, subject_id)
        if row.state != "ready":
            raise not_ready(session, owner, what, row)
        if params.get("commit_reveal"):
            from prover.chain.acceptance import check_commit_reveal

            check_commit_reveal(store, row.id)
        job = jobs.new_job(session, kind, subject_id, owner, params)
        return {"job_id": job.id, "state": job.state}, [(job.id, kind)]
