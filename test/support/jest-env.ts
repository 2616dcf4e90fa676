// Metrics would print EMF blobs and the logger JSON lines into the test output.
process.env['POWERTOOLS_METRICS_DISABLED'] = 'true';
process.env['POWERTOOLS_LOG_LEVEL'] = 'SILENT';
process.env['AWS_REGION'] = 'us-east-1';
