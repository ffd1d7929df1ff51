"""A run's report as a page shows it: the run, and once it completed, its three charts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from shared.models import ReconciliationRun
from shared.reporting.charts import Chart, run_report_charts
from shared.runs.history import recent_run_figures, run_figures
from shared.runs.lifecycle import get_run


@dataclass(frozen=True)
class RunReport:
    """The run and its charts (none until it completed with a report)."""

    run: ReconciliationRun
    charts: tuple[Chart, ...]


def run_report(*, session: Session, org_id: uuid.UUID, run_id: uuid.UUID) -> RunReport:
    """The organisation's run (NotFound in another organisation) with its charts: matched %
    over the last completed runs, its discrepancies by type, its money at stake."""
    run = get_run(session=session, org_id=org_id, run_id=run_id)
    if run.status != "completed" or run.report_json is None:
        return RunReport(run, ())
    recent = recent_run_figures(session=session, org_id=org_id)
    return RunReport(run, run_report_charts(run_figures(run), recent))
