/**
 * What each principal of Tandem may do in the data bucket, in one table: the object keys it reads or writes
 * as IAM resource patterns (built from the key layout of lambdas/core/batch/contracts.ts where it names
 * them), and whether it may list the bucket. The constructs grant from this table, lib/nag-suppressions.ts
 * explains each wildcard from it, and test/infra/bucket-access.test.ts runs the real handlers against s3rver
 * and checks that every S3 call they make is allowed by the synthesized policies and that every grant here
 * is used.
 */
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as path from 'node:path';
import { chunkFailuresPrefix, chunkReportKey, itemsKey, planKey } from '../lambdas/core/batch/contracts.ts';
import { MAP_RESULTS_FOLDER } from './batch-definition.ts';

const ANY_RUN = '*';

/** Object key patterns of the data bucket (`*` matches any characters, `/` included, as in IAM). */
export const KEY_PATTERNS = {
  models: {
    pattern: 'models/*',
    reason:
      'Objects under models/ only: model packages and current.json pointers, whose names and versions are chosen at run time (a new model or version needs no redeploy).',
  },
  incoming: {
    pattern: 'incoming/*',
    reason:
      'Objects under incoming/ only: the uploads to score, whose keys the uploader chooses; GetObjectVersion because a run reads the exact version that triggered it.',
  },
  runPlan: {
    pattern: planKey(ANY_RUN),
    reason:
      'The plan of a run only (runs/<runId>/plan.json): the run id is created per execution, so only the file name can be fixed.',
  },
  runItems: {
    pattern: itemsKey(ANY_RUN),
    reason:
      "The Distributed Map's item list of a run only (runs/<runId>/items.json): the run id is created per execution.",
  },
  runStaging: {
    pattern: `runs/${ANY_RUN}/staging/*`,
    reason:
      'The decompressed copy of a gzip upload only (runs/<runId>/staging/<dataset>.<format>), under a run id created per execution.',
  },
  runChunkReports: {
    pattern: `${path.posix.dirname(chunkReportKey(ANY_RUN, 0))}/*`,
    reason:
      'The chunk reports of a run only (runs/<runId>/chunks/<index>.json): one per chunk, under a run id created per execution.',
  },
  runFailures: {
    pattern: `${chunkFailuresPrefix(ANY_RUN)}*`,
    reason:
      "A run's records of failed chunk attempts only (runs/<runId>/failures/<index>-<time>-<nonce>.json): a Distributed Map does not pass its children's errors on, so the manifest takes the reason from here.",
  },
  runMapResults: {
    pattern: `runs/${ANY_RUN}/${MAP_RESULTS_FOLDER}/*`,
    reason:
      "The Distributed Map's ResultWriter output only (runs/<runId>/map-results/<map run id>/...): both ids are created by Step Functions per run.",
  },
  resultParts: {
    pattern: 'results/*/part-*',
    reason:
      'Prediction and rejected-row part files only (results/<model>/<dataset>/<runId>/[rejected/]part-<index>.<ext>), a path created per run; the run manifest is not covered.',
  },
  resultManifests: {
    pattern: 'results/*/_manifest.json',
    reason:
      'Run manifests only (results/<model>/<dataset>/<runId>/_manifest.json), a path created per run; part files are not covered.',
  },
  captures: {
    pattern: 'capture/*',
    reason:
      'Captured predictions only (capture/<model>/<source>/dt=<day>/hr=<hour>/<time>-<writer>-<seq>.jsonl.gz): partitioned by model, lane and time, written by every execution environment under names it makes.',
  },
  refreshMarkers: {
    pattern: 'refresh/*',
    reason:
      'Refresh markers only (refresh/<model>/<version>/<cause>-<source digest>.json): one per model version, cause and source, named at run time (lambdas/core/refresh/refresh.ts).',
  },
  modelPointers: {
    pattern: 'models/*/current.json',
    reason:
      "Models' current.json pointers only (models/<model>/current.json): the drift monitor compares captures with the live version's baseline; model names are chosen at run time.",
  },
  manifests: {
    pattern: 'models/*/manifest.json',
    reason:
      "Model versions' manifests only (models/<model>/<version>/manifest.json), read by the drift monitor for the live version's task and classes (live quality); names and versions are chosen at run time.",
  },
  baselines: {
    pattern: 'models/*/baseline.json',
    reason:
      "Model versions' baselines only (models/<model>/<version>/baseline.json), read by the drift monitor; names and versions are chosen at run time.",
  },
  monitoring: {
    pattern: 'monitoring/*',
    reason:
      "The drift monitor's reports and state only (monitoring/<model>/drift/<time>.json, monitoring/<model>/state.json), per model chosen at run time.",
  },
  feedback: {
    pattern: 'feedback/*',
    reason:
      'Outcomes posted to POST /feedback only (feedback/<model>/dt=<day>/<time>-<request id>.jsonl.gz): one new object per request, under names the API makes.',
  },
} as const satisfies Record<string, { readonly pattern: string; readonly reason: string }>;

export type KeyPatternName = keyof typeof KEY_PATTERNS;

export interface ObjectAccess {
  /** GetObject (and HeadObject, which S3 authorizes as GetObject). */
  readonly read?: readonly KeyPatternName[];
  /** GetObject and GetObjectVersion: reads pinned to the object version that started the run. */
  readonly readVersions?: readonly KeyPatternName[];
  /** PutObject of whole objects (one request). */
  readonly put?: readonly KeyPatternName[];
  /** PutObject and AbortMultipartUpload: streamed writes of any length (multipart uploads). */
  readonly upload?: readonly KeyPatternName[];
  /**
   * ListBucket on the bucket, only for prefixes these patterns match (an `s3:prefix` condition): key names
   * under them, no content. Needed to list a prefix, and to tell a missing object from a forbidden one: S3
   * answers GetObject / HeadObject of a missing key with 403 instead of 404 unless ListBucket is allowed
   * with no condition (the request has no `s3:prefix`), so on a 403 the adapters list the key itself
   * (lambdas/adapters/s3-object-store.ts, s3-model-source.ts) to tell the two apart.
   */
  readonly list?: readonly KeyPatternName[];
}

/** The data bucket access of each function, by what its handler does (see the comments). */
export const FUNCTION_ACCESS = {
  // Loads models (current.json, manifest.json, model.onnx); GET /models lists models/; an unknown model
  // must be a 404, not a 503.
  // and writes sampled predictions (data capture) as whole objects under capture/, and the outcomes of
  // POST /feedback under feedback/.
  predict: { read: ['models'], list: ['models'], put: ['captures', 'feedback'] },
  // Reads the upload at its version (a deleted upload must read as missing: ListBucket) and the model
  // manifest; streams a gzip upload's decompressed copy to staging; writes the plan and the map's items.
  plan: {
    read: ['models'],
    readVersions: ['incoming'],
    put: ['runPlan', 'runItems'],
    upload: ['runStaging'],
    list: ['incoming', 'models'],
  },
  // Reads the plan, its range of the upload (at its version) or of the staging copy, and the pinned model;
  // streams its part files; writes its chunk report, or the record of a failed attempt (write only), and
  // its sampled rows (data capture) as whole objects under capture/.
  score: {
    read: ['models', 'runPlan', 'runStaging'],
    readVersions: ['incoming'],
    put: ['runChunkReports', 'runFailures', 'captures'],
    upload: ['resultParts'],
  },
  // Reads the plan (which may be missing when planning failed: ListBucket) and lists and reads the chunk
  // reports and the failure records; writes the run manifest.
  finalize: {
    read: ['runPlan', 'runChunkReports', 'runFailures'],
    put: ['resultManifests'],
    list: ['runPlan', 'runChunkReports', 'runFailures'],
  },
  // Lists the models (models/) and the hour partitions of captures, reads the live version's pointer and
  // baseline (HeadObject then GetObject: a missing baseline is a report, not a failure), the captures and
  // its state; writes the report and the state. ListBucket on monitoring/ finds the latest report.
  // Live quality: the live version's manifest (task, classes), the outcomes under feedback/ (listed by day).
  monitor: {
    read: ['modelPointers', 'manifests', 'baselines', 'captures', 'monitoring', 'feedback'],
    put: ['monitoring'],
    list: ['models', 'captures', 'monitoring', 'feedback'],
  },
} as const satisfies Record<string, ObjectAccess>;

export type TandemFunctionName = keyof typeof FUNCTION_ACCESS;

/** Every key pattern an access names. */
export function patternsOf(access: ObjectAccess): KeyPatternName[] {
  return [
    ...new Set([
      ...(access.read ?? []),
      ...(access.readVersions ?? []),
      ...(access.put ?? []),
      ...(access.upload ?? []),
    ]),
  ];
}

/** Grants an access on a bucket: one statement per set of actions, listing its key patterns. */
export function grantObjectAccess(grantee: iam.IGrantable, bucket: s3.IBucket, access: ObjectAccess): void {
  const grant = (actions: string[], names: readonly KeyPatternName[] | undefined): void => {
    if (!names || names.length === 0) return;
    iam.Grant.addToPrincipal({
      grantee,
      actions,
      resourceArns: names.map((name) => bucket.arnForObjects(KEY_PATTERNS[name].pattern)),
    });
  };
  grant(['s3:GetObject'], access.read);
  grant(['s3:GetObject', 's3:GetObjectVersion'], access.readVersions);
  grant(['s3:PutObject'], access.put);
  grant(['s3:PutObject', 's3:AbortMultipartUpload'], access.upload);
  if (access.list && access.list.length > 0) {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket'],
      resourceArns: [bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': access.list.map((name) => KEY_PATTERNS[name].pattern) } },
    });
  }
}

/**
 * Read access to folders named by the deployer (the prefixes of the `schedules` setting): GetObject and
 * GetObjectVersion under each (a folder run reads each file at the version it planned), and, with `list`,
 * ListBucket for keys under them. The prefixes are checked (lambdas/core/batch/schedules.ts): none is under
 * an output prefix of the stack or holds an IAM wildcard.
 */
export function grantPrefixRead(
  grantee: iam.IGrantable,
  bucket: s3.IBucket,
  prefixes: readonly string[],
  options: { readonly list: boolean },
): void {
  if (prefixes.length === 0) return;
  iam.Grant.addToPrincipal({
    grantee,
    actions: ['s3:GetObject', 's3:GetObjectVersion'],
    resourceArns: prefixes.map((prefix) => bucket.arnForObjects(`${prefix}*`)),
  });
  if (options.list) {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket'],
      resourceArns: [bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': prefixes.map((prefix) => `${prefix}*`) } },
    });
  }
}
