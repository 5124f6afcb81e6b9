"""The job's lifecycle, decided in one pure function: which status a job record may move to
from the one it holds. Every transition is one conditional write (adapters/jobs.py spells
these same rules as a DynamoDB ConditionExpression; the in-memory fake calls `allowed`).

    (none) ─> QUEUED ─> RUNNING ─> SUCCEEDED | CONTENT_FILTERED | FAILED
                 ^         │  ^
                 └─────────┘  └── a later receive, once the last one's lease has passed

- RUNNING counts the attempt (`calls`): every attempt claims the job before the model can be
  called, so `calls` bounds what a job can be billed. An attempt that ends before its model
  call could bill (a source fault, a throttle) gives its count back: RUNNING -> QUEUED. One
  whose call may have billed (a read timeout, a call cut off) keeps it, and its error, which
  the attempt that reaches the cap ends with.
- A RUNNING record is its attempt's until `lease` (the invocation's deadline): a duplicate
  delivery meanwhile is refused, not run a second time.
- A FAILED job whose failure a retry may cure (`retry`: a storage fault on its last receive)
  may be taken up again by a dead-letter redrive or a keyed retry. Every other final status is
  settled: nothing moves it again.
- A record carries its request's hash when an Idempotency-Key named the job: the same key with
  another body is a conflict, never a second job."""

from __future__ import annotations

from dataclasses import dataclass

from img2img.vocabulary import FINAL_STATUSES, Status


@dataclass(frozen=True)
class State:
    """What the conditional writes look at (the stored record's control fields)."""

    status: Status
    calls: int = 0
    lease: float = 0.0  # epoch seconds until which a RUNNING attempt owns the job
    retry: bool = False  # a FAILED job a redrive or a keyed retry may take up again
    request_hash: str | None = None

    @property
    def settled(self) -> bool:
        return self.status in FINAL_STATUSES and not (self.status == "FAILED" and self.retry)


def allowed(
    old: State | None,
    new: Status,
    *,
    now: float,
    calls: int = 0,
    lease: float = 0.0,
    request_hash: str | None = None,
) -> bool:
    """May a record holding `old` become `new`? `calls` and `lease` are the writer's own attempt
    (the count and lease its RUNNING write left): only that attempt may end or release the job
    it claimed. The count alone is not enough: a release gives it back, and the next claim
    takes the same count again."""
    if old is None:
        return not (new == "QUEUED" and calls)  # a release needs the claim it gives back
    if request_hash is not None and old.request_hash not in (None, request_hash):
        return False
    if old.settled:
        return False
    taken_up = old.status == "QUEUED" or old.status == "FAILED"  # FAILED here: retry is set
    mine = old.status == "RUNNING" and old.calls == calls and old.lease == lease
    if new == "RUNNING":
        return taken_up or (old.status == "RUNNING" and old.lease < now)
    if new == "QUEUED":  # an attempt giving its count back, or a keyed retry queuing again
        return mine if calls else old.status == "FAILED"
    return taken_up or mine  # a final status
