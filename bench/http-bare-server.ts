/**
 * The "bare" HTTP server of the http section: node:http, JSON.parse of the body, hand-built tensors,
 * `session.run` (same SESSION_OPTIONS, same ZipMap-free graph), the probabilities as JSON. Nothing
 * else: no validation, no routing, no event adapter, no cache. argv[2]: the ZipMap-free model file.
 * Sends {kind: 'ready', data: {url}}; stops on {kind: 'stop'}.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import ort from 'onnxruntime-node';
import { SESSION_OPTIONS } from '../lambdas/core/model-loader.ts';
import { runChild, sendToParent, stopRequested } from './child.ts';
import { serveProfilingRequests } from './inspector-profile.ts';
import { bareEncoder, PROBABILITIES_OUTPUT, readDemoManifest } from './demo.ts';

runChild(async () => {
  const stopping = stopRequested();
  serveProfilingRequests(); // idle unless bench/profile.ts asks
  const modelFile = process.argv[2];
  if (!modelFile) throw new Error('usage: http-bare-server.ts <model.onnx>');
  const session = await ort.InferenceSession.create(await readFile(modelFile), SESSION_OPTIONS);
  const encode = bareEncoder(await readDemoManifest());

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let features: Record<string, unknown>;
      try {
        features = (
          JSON.parse(Buffer.concat(chunks).toString('utf8')) as { features: Record<string, unknown> }
        ).features;
      } catch {
        res.writeHead(400).end();
        return;
      }
      session.run(encode(features), [PROBABILITIES_OUTPUT]).then(
        (results) => {
          const probabilities = Array.from(results[PROBABILITIES_OUTPUT]!.data as Float32Array);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ probabilities }));
        },
        () => res.writeHead(500).end(),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await sendToParent({ kind: 'ready', data: { url: `http://127.0.0.1:${port}` } });
    await stopping;
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await session.release();
  }
});
