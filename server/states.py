"""The job state machine: queued -> running -> done | failed | cancelled; illegal moves raise."""

from __future__ import annotations

from enum import Enum

from codec.errors import SpinrError


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED}),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class IllegalTransition(SpinrError, ValueError):
    """A job was asked to move to a state its current state does not lead to."""

    def __init__(self, job_id: str, current: JobState, wanted: JobState) -> None:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (it is finished)"
        super().__init__(
            f"job {job_id} cannot go from {current.value} to {wanted.value}; allowed from {current.value}: {allowed}"
        )
        self.job_id, self.current, self.wanted = job_id, current, wanted


def check_transition(job_id: str, current: JobState | str, wanted: JobState | str) -> None:
    current, wanted = JobState(current), JobState(wanted)
    if wanted not in TRANSITIONS[current]:
        raise IllegalTransition(job_id, current, wanted)
