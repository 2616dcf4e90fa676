/**
 * The precomputed predictions table (ARCHITECTURE.md): one item per (model, version, entity), key `pk` =
 * `<model>#<version>#<entityId>`, TTL on `expiresAt`. On-demand, point-in-time recovery, kept on stack deletion.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';

/** The item attributes the infrastructure depends on (the rest are the adapters' business). */
export const TABLE_SCHEMA = { partitionKey: 'pk', ttlAttribute: 'expiresAt' } as const;

export interface PredictionTableProps {
  /**
   * What happens to the table when it leaves the stack. Predictions are data: kept by default.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Refuse DeleteTable calls (from anyone) until turned off.
   * @default true
   */
  readonly deletionProtection?: boolean;
}

export class PredictionTable extends Construct {
  public readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: PredictionTableProps = {}) {
    super(scope, id);
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: TABLE_SCHEMA.partitionKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: TABLE_SCHEMA.ttlAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }
}
