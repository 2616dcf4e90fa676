/**
 * The stream consumer's handler, built from its dependencies (stream-score.ts wires the deployed ones,
 * local/stream-poller.ts the local ones): a Kinesis event in, a partial batch response out.
 *
 * Not the Powertools batch utility: it calls a handler once per record, and this lane scores the whole
 * micro-batch in one ONNX run. The response follows the same contract (ReportBatchItemFailures): for a
 * Kinesis source only the first failed record matters, and the batch is retried from it.
 */
import type { KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import {
  scoreMicroBatch,
  type MicroBatchDeps,
  type MicroBatchOutcome,
} from '../../core/stream/micro-batch.ts';
import type { StreamRecord } from '../../core/stream/stream-event.ts';

export interface StreamHandlerLog {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

export interface StreamHandlerDeps extends MicroBatchDeps {
  readonly log: StreamHandlerLog;
  /** Called with each invocation's outcome (metrics). */
  readonly observe?: (outcome: MicroBatchOutcome) => void;
}

export function toStreamRecord(record: KinesisStreamRecord): StreamRecord {
  const { kinesis } = record;
  return {
    data: Buffer.from(kinesis.data, 'base64'),
    partitionKey: kinesis.partitionKey,
    sequenceNumber: kinesis.sequenceNumber,
    arrivalMs: Math.round(kinesis.approximateArrivalTimestamp * 1000),
    // eventID is `<shardId>:<sequenceNumber>`.
    shardId: record.eventID.slice(0, record.eventID.lastIndexOf(':')) || 'unknown',
  };
}

export function createStreamHandler(deps: StreamHandlerDeps) {
  return async function handler(event: KinesisStreamEvent): Promise<KinesisStreamBatchResponse> {
    // Captures left from earlier invocations are written in the background: this batch does not wait.
    deps.capture?.flushIfDue();
    const records = event.Records.map(toStreamRecord);
    let outcome: MicroBatchOutcome;
    try {
      outcome = await scoreMicroBatch(records, deps);
    } catch (error) {
      // A model that cannot be loaded (or a scoring failure): nothing is checkpointed, the batch returns.
      deps.log.error('micro-batch failed as a whole', {
        records: records.length,
        firstSequenceNumber: records[0]?.sequenceNumber,
        error: error as Error,
      });
      throw error;
    }
    deps.observe?.(outcome);
    const summary = { ...outcome.counts, modelLatencyMs: Math.round(outcome.modelLatencyMs) };
    if (outcome.retryFrom === undefined) {
      deps.log.info('micro-batch scored', summary);
      return { batchItemFailures: [] };
    }
    deps.log.warn('micro-batch stopped at a record; retried from it', {
      ...summary,
      retryFrom: outcome.retryFrom,
      failure: outcome.failure,
    });
    return { batchItemFailures: [{ itemIdentifier: outcome.retryFrom }] };
  };
}
