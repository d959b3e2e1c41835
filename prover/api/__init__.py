"""HTTP interface (FastAPI): parse, authorize, enqueue, report."""
