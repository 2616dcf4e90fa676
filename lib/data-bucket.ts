/**
 * The data bucket: model packages (`models/`), uploads (`incoming/`), run state (`runs/`) and outputs
 * (`results/`), with the layout of lambdas/core/batch/contracts.ts. Private, encrypted, TLS-only,
 * versioned, with access logs in a separate bucket, and EventBridge notifications on (the batch trigger).
 */
import { Annotations, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** The key prefixes of the data bucket (see lambdas/core/batch/contracts.ts). */
export const DATA_PREFIXES = {
  models: 'models/',
  incoming: 'incoming/',
  runs: 'runs/',
  results: 'results/',
} as const;

const ACCESS_LOG_PREFIX = 'data-bucket/';
/** Objects larger than this (128 KiB - 1) move to Standard-IA; smaller ones would be billed as 128 KiB. */
const RESULTS_IA_MIN_BYTES = 128 * 1024 - 1;

export interface DataBucketProps {
  /**
   * Days after which run state (`runs/`: plans, items, staging copies, chunk reports, map results) expires.
   * Runs are finished within hours; the manifest under `results/` is the lasting record.
   * @default 14
   */
  readonly runsExpirationDays?: number;
  /**
   * Days after which `results/` objects move to S3 Standard-IA (objects of 128 KiB or more only: smaller
   * ones would be billed as 128 KiB). 0 = never.
   * @default 30
   */
  readonly resultsInfrequentAccessDays?: number;
  /**
   * Days after which `results/` objects expire. 0 = never (the table keeps its own TTL).
   * @default 365
   */
  readonly resultsExpirationDays?: number;
  /**
   * Days a replaced or deleted object version is kept (undo window for models, uploads and results).
   * @default 30
   */
  readonly noncurrentVersionExpirationDays?: number;
  /**
   * Days server access logs are kept.
   * @default 90
   */
  readonly accessLogsExpirationDays?: number;
}

function days(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min || value > 36_500) {
    throw new Error(`DataBucket ${name} must be an integer from ${min} to 36500 days, got ${value}`);
  }
  return value;
}

export class DataBucket extends Construct {
  /** The data bucket. */
  public readonly bucket: s3.Bucket;
  /** Where the data bucket's server access logs go. */
  public readonly accessLogsBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: DataBucketProps = {}) {
    super(scope, id);
    const runsDays = days('runsExpirationDays', props.runsExpirationDays ?? 14, 1);
    const resultsIaDays = days('resultsInfrequentAccessDays', props.resultsInfrequentAccessDays ?? 30, 0);
    const resultsDays = days('resultsExpirationDays', props.resultsExpirationDays ?? 365, 0);
    const noncurrentDays = days(
      'noncurrentVersionExpirationDays',
      props.noncurrentVersionExpirationDays ?? 30,
      1,
    );
    const logDays = days('accessLogsExpirationDays', props.accessLogsExpirationDays ?? 90, 1);
    if (resultsIaDays > 0 && resultsIaDays < 30) {
      throw new Error(
        `DataBucket resultsInfrequentAccessDays must be 0 or at least 30 (S3 minimum), got ${resultsIaDays}`,
      );
    }
    if (resultsDays > 0 && resultsIaDays > 0 && resultsDays <= resultsIaDays) {
      Annotations.of(this).addWarningV2(
        'tandem:results-lifecycle',
        `results/ expire after ${resultsDays} days, before or when they would move to Standard-IA (${resultsIaDays} days): the transition is skipped`,
      );
    }

    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
      // Server access log delivery only supports SSE-S3 on the target bucket.
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: false,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(logDays) }],
    });

    const resultsTransition =
      resultsIaDays > 0 && (resultsDays === 0 || resultsDays > resultsIaDays)
        ? [{ storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(resultsIaDays) }]
        : undefined;

    const lifecycleRules: s3.LifecycleRule[] = [
      {
        id: 'expire-run-state',
        prefix: DATA_PREFIXES.runs,
        expiration: Duration.days(runsDays),
        noncurrentVersionExpiration: Duration.days(1),
      },
      {
        id: 'expire-noncurrent-versions',
        noncurrentVersionExpiration: Duration.days(noncurrentDays),
        abortIncompleteMultipartUploadAfter: Duration.days(2),
      },
      { id: 'remove-expired-delete-markers', expiredObjectDeleteMarker: true },
    ];
    // Two rules for results/: an S3 rule's filter applies to all of its actions, so a size filter on the
    // expiration would keep every object of 128 KiB or less (manifests, rejected rows, small parts) forever.
    if (resultsDays > 0) {
      lifecycleRules.push({
        id: 'expire-results',
        prefix: DATA_PREFIXES.results,
        expiration: Duration.days(resultsDays),
      });
    }
    if (resultsTransition) {
      lifecycleRules.push({
        id: 'results-to-infrequent-access',
        prefix: DATA_PREFIXES.results,
        transitions: resultsTransition,
        // Standard-IA bills objects under 128 KiB as 128 KiB: only move the larger ones.
        objectSizeGreaterThan: RESULTS_IA_MIN_BYTES,
      });
    }

    this.bucket = new s3.Bucket(this, 'Bucket', {
      // SSE-S3: Step Functions' ItemReader / ResultWriter and every function read it without key grants.
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules,
    });

    const transitionRule = lifecycleRules.findIndex((rule) => rule.id === 'results-to-infrequent-access');
    if (transitionRule >= 0) {
      // The L2 renders ObjectSizeGreaterThan as a number; the CloudFormation schema says string.
      (this.bucket.node.defaultChild as s3.CfnBucket).addPropertyOverride(
        `LifecycleConfiguration.Rules.${transitionRule}.ObjectSizeGreaterThan`,
        String(RESULTS_IA_MIN_BYTES),
      );
    }

    // Server access logs, set on the L1 with an explicit bucket policy: the L2's `serverAccessLogsBucket` uses
    // ACLs (which BUCKET_OWNER_ENFORCED disables) unless the app sets a feature flag, and this construct must
    // not depend on the flags of the app it is used in.
    const cfnBucket = this.bucket.node.defaultChild as s3.CfnBucket;
    cfnBucket.loggingConfiguration = {
      destinationBucketName: this.accessLogsBucket.bucketName,
      logFilePrefix: ACCESS_LOG_PREFIX,
    };
    this.accessLogsBucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'S3ServerAccessLogsFromTheDataBucket',
        principals: [new iam.ServicePrincipal('logging.s3.amazonaws.com')],
        actions: ['s3:PutObject'],
        resources: [this.accessLogsBucket.arnForObjects(`${ACCESS_LOG_PREFIX}*`)],
        conditions: {
          ArnLike: { 'aws:SourceArn': this.bucket.bucketArn },
          StringEquals: { 'aws:SourceAccount': Stack.of(this).account },
        },
      }),
    );

    // EventBridge notifications as a property of the bucket itself: `eventBridgeEnabled: true` on the L2
    // would deploy a custom-resource Lambda (BucketNotificationsHandler) just to make this API call.
    cfnBucket.notificationConfiguration = { eventBridgeConfiguration: { eventBridgeEnabled: true } };
  }
}
