"""The worker: SQS batches (S3 notifications of inbox/ and async API jobs) -> domain/queue_worker.py.
Partial batch responses: only the records that failed come back to the queue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from img2img.domain.errors import ServiceError
from img2img.domain.pipeline import Attempt
from img2img.domain.records import ErrorInfo, Summary
from img2img.handlers.observability import count_failure, logger, metrics, tracer
from img2img.handlers.queue_messages import Skipped, UnreadableMessage, read_message
from img2img.handlers.wiring import get_service

# Answer every failed record instead of raising when all failed: the queue redelivers either
# way, and the response stays one shape.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _receive_count(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


@tracer.capture_method
def process_record(record: SQSRecord, lambda_context: LambdaContext) -> list[Summary]:
    """One SQS record (Powertools' batch processor passes the invocation's context in)."""
    service = get_service(sync=False)
    final_attempt = _receive_count(record) >= service.settings.max_receive_count
    try:
        message = read_message(record.body)
        if isinstance(message, Skipped):
            logger.info("skipped a message that starts no job", extra={"reason": message.reason})
            return []
        time_left = lambda: lambda_context.get_remaining_time_in_millis() / 1000  # noqa: E731
        summaries = service.worker.handle(message, Attempt(final=final_attempt, time_left=time_left))
    except UnreadableMessage as exc:  # nothing to answer, and no redelivery would read it better
        logger.error(
            "dropped an unreadable message", extra={"message_id": record.message_id, "reason": str(exc)}
        )
        return []
    except ServiceError as error:
        if final_attempt and error.job_id is None:  # a recorded job was counted where it was recorded
            count_failure(ErrorInfo.of(error))
        logger.warning(
            "job will be retried" if not final_attempt else "job failed on its last attempt",
            extra={
                "code": error.code,
                "error_message": error.message,
                "internal": error.internal,
                "receive_count": _receive_count(record),
            },
        )
        raise
    for summary in summaries:
        logger.info("job finished", extra={"job_id": summary.job_id, "status": summary.status})
    return summaries


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=process_record, processor=processor, context=context
    )
    return dict(response)
