/**
 * The only place AWS SDK clients are built: one module per service (clients/), each client built once
 * per process from the environment (endpoints come from the SDK's own AWS_ENDPOINT_URL_<SERVICE>
 * variables, so the local stack needs no code path). Adapters take the client they use as an argument.
 */
export { BATCH_DYNAMODB_CONFIG, batchDynamoClient, dynamoClient } from './clients/dynamodb.ts';
export { kinesisClient } from './clients/kinesis.ts';
export { eventBridgeClient } from './clients/eventbridge.ts';
export { s3Client } from './clients/s3.ts';
export { sfnClient } from './clients/sfn.ts';
export { cloudWatchClient } from './clients/cloudwatch.ts';
