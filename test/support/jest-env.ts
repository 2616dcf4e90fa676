// Metrics would print EMF blobs and the logger JSON lines into the test output.
process.env['POWERTOOLS_METRICS_DISABLED'] = 'true';
process.env['POWERTOOLS_LOG_LEVEL'] = 'SILENT';
process.env['AWS_REGION'] = 'us-east-1';
// The AWS SDK's Node-version notice (Node 20 here): see local/node-support.ts.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
