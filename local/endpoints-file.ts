/**
 * `<data dir>/endpoints.json`: where a running local stack (`npm start`) can be reached, written when it
 * has started and removed when it stops, so that the `tandem` command finds it from the same data folder.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface LocalEndpoints {
  readonly apiUrl: string | undefined;
  readonly s3Endpoint: string;
  readonly dynamoEndpoint: string;
  readonly region: string;
  /** The emulators' fixed key pair (not a secret: s3rver accepts only this one). */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly bucket: string;
  readonly table: string;
  readonly modelsPrefix: string;
  readonly pid: number;
  /** The schedules `npm start` runs (the `schedules` setting as given), for `tandem schedules list`. */
  readonly schedules?: readonly unknown[];
  /** When its scheduler started (ms): rate expressions count from it. */
  readonly schedulesStartedAt?: number;
}

export const ENDPOINTS_FILE = 'endpoints.json';

export async function writeEndpointsFile(dataDir: string, endpoints: LocalEndpoints): Promise<string> {
  const file = path.join(dataDir, ENDPOINTS_FILE);
  await writeFile(file, `${JSON.stringify(endpoints, null, 2)}\n`);
  return file;
}

export async function removeEndpointsFile(dataDir: string): Promise<void> {
  await rm(path.join(dataDir, ENDPOINTS_FILE), { force: true });
}

/** The endpoints of the stack running on this data folder; throws a message saying how to start one. */
export async function readEndpointsFile(dataDir: string): Promise<LocalEndpoints> {
  const file = path.join(dataDir, ENDPOINTS_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error(
      `no local stack found: ${file} does not exist. Start one with \`npm start\` (and the same --data-dir), or use --stack <name> for a deployed stack`,
    );
  }
  let endpoints: LocalEndpoints;
  try {
    endpoints = JSON.parse(text) as LocalEndpoints;
  } catch (error) {
    throw new Error(
      `${file} is not valid JSON (${(error as Error).message}): it was cut short or edited; stop \`npm start\` if it runs, delete the file and start it again`,
    );
  }
  if (typeof endpoints?.pid !== 'number' || typeof endpoints.s3Endpoint !== 'string') {
    throw new Error(
      `${file} does not say where the local stack is (no pid or s3Endpoint): delete it and start the stack again with \`npm start\``,
    );
  }
  if (!isRunning(endpoints.pid)) {
    throw new Error(
      `the local stack that wrote ${file} (pid ${endpoints.pid}) is not running: start it with \`npm start\``,
    );
  }
  return endpoints;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
