/**
 * Imported first by the local tools (npm start, npm run batch, npm run tandem, the soak and the benchmarks). The AWS SDK warns
 * at every start under Node 20 that its releases after January 2027 need Node 22: the SDK versions in
 * package-lock.json run on Node 20.19+, and docs/internals/node-versions.md says which Node versions are
 * supported and when to move, so the local tools do not repeat it. Lambda runs Node 22: no warning there.
 */
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
