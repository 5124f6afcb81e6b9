"""Job records in DynamoDB: one item per job, its lifecycle (domain/job_states.py) moved by
one conditional UpdateItem per transition. A record is small: the control fields the
conditions read (status, calls, lease, retry, request_hash) and a JSON view of the job (doc),
never image bytes. The same write tells what the item held before, at no extra request
(ReturnValues and ReturnValuesOnConditionCheckFailure ALL_OLD)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from img2img.domain.errors import JobNotFound, StorageError
from img2img.domain.job_states import State
from img2img.domain.ports import Written
from img2img.domain.records import JobRecord


def _pk(job_id: str) -> dict[str, str]:
    return {"S": f"job#{job_id}"}


# The rules of job_states.allowed, as DynamoDB conditions on the stored item.
_NEW = "attribute_not_exists(pk)"
_TAKEN_UP = "(#s = :queued OR (#s = :failed AND #r = :yes))"
_MINE = "(#s = :running AND #c = :calls AND #l = :lease)"
_LAPSED = "(#s = :running AND (attribute_not_exists(#l) OR #l < :now))"


class JobStore:
    def __init__(self, client: Any, table: str, ttl_days: int) -> None:
        self._client = client
        self._table = table
        self._ttl_seconds = ttl_days * 86400

    def write(
        self,
        record: JobRecord,
        *,
        now: float,
        calls: int = 0,
        lease: float = 0.0,
        retry: bool = False,
        request_hash: str | None = None,
        billed: bool = False,
    ) -> Written:
        status = record.status
        values: dict[str, Any] = {
            ":status": {"S": status},
            ":doc": {"S": json.dumps(record.to_json_dict(), separators=(",", ":"))},
            ":updated": {"S": record.updated_at},
            ":ttl": {"N": str(int(now) + self._ttl_seconds)},
            ":lease": {"N": repr(lease)},
            ":retry": {"BOOL": retry},
            ":zero": {"N": "0"},
            ":queued": {"S": "QUEUED"},
            ":failed": {"S": "FAILED"},
            ":running": {"S": "RUNNING"},
            ":yes": {"BOOL": True},
            ":calls": {"N": str(calls)},
        }
        sets = "#s = :status, doc = :doc, updated_at = :updated, #t = :ttl, #l = :lease, #r = :retry"
        if status == "RUNNING":
            sets += ", #c = if_not_exists(#c, :zero) + :one"
            values[":one"], values[":now"] = {"N": "1"}, {"N": repr(now)}
            condition = f"{_NEW} OR {_TAKEN_UP} OR {_LAPSED}"
        elif status == "QUEUED" and calls:
            sets += ", #c = :released"
            values[":released"] = {"N": str(calls if billed else calls - 1)}
            condition = _MINE
        elif status == "QUEUED":
            sets += ", #c = if_not_exists(#c, :zero)"
            condition = f"{_NEW} OR (#s = :failed AND #r = :yes)"
        else:
            sets += ", #c = if_not_exists(#c, :zero)"
            condition = f"{_NEW} OR {_TAKEN_UP} OR {_MINE}"
        names = {"#s": "status", "#c": "calls", "#l": "lease", "#r": "retry", "#t": "ttl"}
        if request_hash is not None:
            sets += ", #h = :hash"
            values[":hash"], names["#h"] = {"S": request_hash}, "request_hash"
            condition = f"({condition}) AND (attribute_not_exists(#h) OR #h = :hash)"
        # DynamoDB refuses unused placeholders: keep only the ones this write names.
        text = f"{sets} {condition}"
        values = {k: v for k, v in values.items() if k in text}
        try:
            old = self._client.update_item(
                TableName=self._table,
                Key={"pk": _pk(record.job_id)},
                UpdateExpression=f"SET {sets}",
                ConditionExpression=condition,
                ExpressionAttributeNames={k: v for k, v in names.items() if k in text},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ).get("Attributes")
            applied = True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StorageError(f"could not record job {record.job_id}", internal=str(exc)) from exc
            old, applied = exc.response.get("Item"), False
        except BotoCoreError as exc:
            raise StorageError(f"could not record job {record.job_id}", internal=str(exc)) from exc
        if not old:
            return Written(applied, None, None)
        return Written(applied, _state(old), JobRecord.model_validate_json(old["doc"]["S"]))

    def get(self, job_id: str) -> JobRecord:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": _pk(job_id)}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"could not read job {job_id}", internal=str(exc)) from exc
        item = response.get("Item")
        if not item:
            raise JobNotFound(f"no job {job_id}")
        return JobRecord.model_validate_json(item["doc"]["S"])


def _state(item: dict[str, Any]) -> State:
    """An item's control fields. Records the previous version wrote have status and doc only:
    a RUNNING one has no lease (taken up at once), a FAILED one no retry (settled)."""
    return State(
        status=item["status"]["S"],
        calls=int(item.get("calls", {}).get("N", 0)),
        lease=float(item.get("lease", {}).get("N", 0)),
        retry=bool(item.get("retry", {}).get("BOOL", False)),
        request_hash=item.get("request_hash", {}).get("S"),
    )
