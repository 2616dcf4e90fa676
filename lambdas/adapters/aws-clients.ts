/**
 * The only place AWS SDK clients are built: once per process, from the environment (endpoints come
 * from the SDK's own AWS_ENDPOINT_URL_<SERVICE> variables, so the local stack needs no code path).
 * One module per service (clients/), so that a function loads the SDK packages of the services it
 * uses and no other (the API function, for one, never loads Step Functions or EventBridge).
 */
export { BATCH_DYNAMODB_CONFIG, batchDynamoClient, dynamoClient } from './clients/dynamodb.ts';
export { eventBridgeClient } from './clients/eventbridge.ts';
export { s3Client } from './clients/s3.ts';
export { sfnClient } from './clients/sfn.ts';
