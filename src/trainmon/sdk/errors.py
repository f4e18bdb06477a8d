"""The exception a training loop sees when its job is cancelled."""

from __future__ import annotations


class JobCancelled(BaseException):
    """Raised by ``run.log()`` (or ``track``) once the server reports a cancel request
    (from the dashboard, the API or the CLI alike).

    A ``BaseException`` like ``KeyboardInterrupt``, so the common ``except Exception`` around a
    training step does not swallow it; the run's context manager reports the job cancelled.
    """

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} was cancelled")
        self.job_id = job_id
