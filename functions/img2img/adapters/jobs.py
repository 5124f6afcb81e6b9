"""Job records in DynamoDB (the same table holds Powertools idempotency records, under other
keys). A record is small: status, times and a JSON view of the job, never image bytes."""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from img2img.domain.errors import JobNotFound, StorageError
from img2img.domain.records import FINAL_STATUSES, JobRecord


def _pk(job_id: str) -> dict[str, str]:
    return {"S": f"job#{job_id}"}


class JobStore:
    def __init__(self, client: Any, table: str, ttl_days: int) -> None:
        self._client = client
        self._table = table
        self._ttl_seconds = ttl_days * 86400

    def save(self, record: JobRecord, *, over_failed: bool = False) -> str | None:
        """Write the job's current state. A final state is never overwritten by a non-final one
        (a late redelivery must not turn SUCCEEDED back into RUNNING), except FAILED when
        `over_failed` says a caller's retry starts the same job again. Answers the status the
        record had before, written or not (None: there was no record): the same PutItem tells,
        at no extra cost (ReturnValues and ReturnValuesOnConditionCheckFailure ALL_OLD)."""
        item = {
            "pk": _pk(record.job_id),
            "status": {"S": record.status},
            "updated_at": {"S": record.updated_at},
            "doc": {"S": json.dumps(record.to_json_dict(), separators=(",", ":"))},
            "ttl": {"N": str(int(time.time()) + self._ttl_seconds)},
        }
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": item, "ReturnValues": "ALL_OLD"}
        if record.status not in FINAL_STATUSES:
            kept = sorted(FINAL_STATUSES - {"FAILED"} if over_failed else FINAL_STATUSES)
            names = [f":s{index}" for index in range(len(kept))]
            kwargs["ConditionExpression"] = f"attribute_not_exists(pk) OR NOT #s IN ({', '.join(names)})"
            kwargs["ExpressionAttributeNames"] = {"#s": "status"}
            kwargs["ExpressionAttributeValues"] = {
                name: {"S": status} for name, status in zip(names, kept, strict=True)
            }
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            old = self._client.put_item(**kwargs).get("Attributes")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                old = exc.response.get("Item")  # the final record that stays
            else:
                raise StorageError(f"could not record job {record.job_id}", internal=str(exc)) from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not record job {record.job_id}", internal=str(exc)) from exc
        return str(old["status"]["S"]) if old and "status" in old else None

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
