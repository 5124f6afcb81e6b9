"""Exactly-once model calls on top of Powertools idempotency (records in the jobs table).
`once(key, fingerprint, compute)` runs `compute` the first time a key is seen and answers its
stored result afterwards; the same key with another fingerprint is a conflict."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from img2img.domain.errors import IdempotencyConflict

Summary = dict[str, Any]


def record_prefix(scope: str) -> str:
    """The part of a record's key before `#<hash>`: one per scope, so scopes never collide.
    Spelled as the records this service wrote before it passed a key_prefix (Powertools then
    derived it from the function's name), so records in a deployed table keep matching across
    the upgrade and a retried request is still answered, not run (and billed) again."""
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "test-func")
    return f"{function}.{__name__}.img2img.{scope}"


class InProgress(IdempotencyConflict):
    retryable = True


class Idempotency:
    def __init__(self, client: Any, table: str, expires_after_seconds: int = 24 * 3600) -> None:
        self._layer = DynamoDBPersistenceLayer(
            table_name=table, key_attr="pk", expiry_attr="ttl", boto3_client=client
        )
        self.config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="fingerprint",
            expires_after_seconds=expires_after_seconds,
            raise_on_no_idempotency_key=True,
        )

    def register_lambda_context(self, context: Any) -> None:
        """Lets an in-progress record expire with the invocation, so a killed run can be redone."""
        self.config.register_lambda_context(context)

    def once(self, scope: str, key: str, fingerprint: str, compute: Callable[[], Summary]) -> Summary:
        def run(record: dict[str, str]) -> Summary:
            return compute()

        guarded = idempotent_function(
            data_keyword_argument="record",
            persistence_store=self._layer,
            config=self.config,
            key_prefix=record_prefix(scope),
        )(run)
        try:
            result: Summary = guarded(record={"key": key, "fingerprint": fingerprint})
        except IdempotencyValidationError as exc:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request body"
            ) from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise InProgress("a request with this idempotency key is still being processed") from exc
        return result
