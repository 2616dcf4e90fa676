import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  BatchGetItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  ensureBucket,
  ensureTable,
  startEmbeddedAws,
  type EmbeddedAws,
  type S3rverNotification,
} from '../../local/embedded-aws.ts';
import { uploadModelPackages } from '../../local/uploader.ts';

const TABLE = 'tandem-predictions';
const BUCKET = 'tandem-data';

describe('embedded AWS (dynalite + s3rver)', () => {
  let aws: EmbeddedAws;
  let dynamo: DynamoDBClient;
  let s3: S3Client;
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'tandem-embedded-test-'));
    aws = await startEmbeddedAws({ dynamoPort: 0, s3Port: 0 });
    dynamo = new DynamoDBClient(aws.clientConfig('dynamodb'));
    s3 = new S3Client(aws.clientConfig('s3'));
  }, 60_000);

  afterAll(async () => {
    dynamo?.destroy();
    s3?.destroy();
    await aws?.stop();
    await rm(scratch, { recursive: true, force: true });
  }, 60_000);

  it('reports real loopback endpoints and the env the SDK reads', () => {
    expect(aws.dynamoEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(aws.s3Endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(aws.dynamoEndpoint).not.toMatch(/:0$/);
    expect(aws.env()).toMatchObject({
      AWS_ENDPOINT_URL_DYNAMODB: aws.dynamoEndpoint,
      AWS_ENDPOINT_URL_S3: aws.s3Endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      TANDEM_S3_FORCE_PATH_STYLE: 'true',
    });
  });

  it('creates the predictions table once, then finds it', async () => {
    const first = await ensureTable(dynamo, TABLE);
    const second = await ensureTable(dynamo, TABLE);
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    // dynalite 4 has no UpdateTimeToLive.
    expect(first.ttl).toBe('unsupported');
  });

  it('puts, gets and batch-gets items', async () => {
    const items = ['t-1', 't-2', 't-3'].map((id, i) => ({
      pk: `fraud-detector#${id}`,
      prediction: { label: i % 2, probabilities: { '0': 0.25, '1': 0.75 } },
      modelVersion: '1.0.0',
      computedAt: 1_700_000_000_000 + i,
      expiresAt: 1_800_000_000,
    }));
    for (const item of items)
      await dynamo.send(new PutItemCommand({ TableName: TABLE, Item: marshall(item) }));

    const got = await dynamo.send(
      new GetItemCommand({ TableName: TABLE, Key: marshall({ pk: 'fraud-detector#t-2' }) }),
    );
    expect(got.Item && unmarshall(got.Item)).toEqual(items[1]);

    const batch = await dynamo.send(
      new BatchGetItemCommand({
        RequestItems: { [TABLE]: { Keys: items.map((it) => marshall({ pk: it.pk })) } },
      }),
    );
    const returned = (batch.Responses?.[TABLE] ?? []).map((it) => unmarshall(it));
    expect(returned.map((it) => it['pk']).sort()).toEqual(items.map((it) => it.pk));
    expect(batch.UnprocessedKeys ?? {}).toEqual({});
  });

  it('creates a bucket once and keeps streamed bodies intact', async () => {
    expect(await ensureBucket(s3, BUCKET)).toBe(true);
    expect(await ensureBucket(s3, BUCKET)).toBe(false);

    // The case that needs requestChecksumCalculation WHEN_REQUIRED: a stream of known length.
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'probe/streamed.txt',
        Body: Readable.from([Buffer.from('abc'), Buffer.from('def')]),
        ContentLength: 6,
      }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'probe/streamed.txt' }));
    expect(await got.Body?.transformToString()).toBe('abcdef');
  });

  it('uploads model packages and nothing else', async () => {
    const models = path.join(scratch, 'models');
    const pkg = path.join(models, 'fraud-detector', '1.0.0');
    await mkdir(pkg, { recursive: true });
    await mkdir(path.join(models, 'fraud-detector', 'notes'), { recursive: true }); // no manifest: skipped
    await mkdir(path.join(models, 'empty-model'), { recursive: true });
    const onnxBytes = Buffer.from([0x08, 0x07, 0x12, 0x00, 0xff, 0xfe]);
    await writeFile(path.join(pkg, 'model.onnx'), onnxBytes);
    await writeFile(
      path.join(pkg, 'manifest.json'),
      JSON.stringify({ name: 'fraud-detector', version: '1.0.0' }),
    );
    await writeFile(path.join(pkg, 'training.csv'), 'a,b\n1,2\n');
    await writeFile(
      path.join(models, 'fraud-detector', 'current.json'),
      JSON.stringify({ version: '1.0.0' }),
    );
    await writeFile(path.join(models, 'fraud-detector', 'train.ts'), 'export {};\n');
    await writeFile(path.join(models, 'fraud-detector', 'demo.csv'), 'id\n1\n');
    await writeFile(path.join(models, 'fraud-detector', 'notes', 'readme.md'), '# notes\n');

    const events: S3rverNotification[] = [];
    const unsubscribe = aws.onS3Event((e) => events.push(e));
    const keys = await uploadModelPackages(s3, BUCKET, models);
    unsubscribe();

    const expected = [
      'models/fraud-detector/1.0.0/manifest.json',
      'models/fraud-detector/1.0.0/model.onnx',
      'models/fraud-detector/current.json',
    ];
    expect(keys).toEqual(expected);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'models/' }));
    expect((listed.Contents ?? []).map((o) => o.Key).sort()).toEqual(expected);

    const onnx = await s3.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: 'models/fraud-detector/1.0.0/model.onnx' }),
    );
    expect(Buffer.from((await onnx.Body?.transformToByteArray()) ?? [])).toEqual(onnxBytes);
    expect(events.flatMap((e) => e.Records.map((r) => `${r.eventName} ${r.s3.object.key}`))).toEqual(
      expected.map((k) => `ObjectCreated:Put ${k}`),
    );
  });

  it('rejects a manifest without its model', async () => {
    const models = path.join(scratch, 'broken');
    await mkdir(path.join(models, 'm', '2'), { recursive: true });
    await writeFile(path.join(models, 'm', '2', 'manifest.json'), '{}');
    await expect(uploadModelPackages(s3, BUCKET, models)).rejects.toThrow(
      /manifest\.json but no model\.onnx/,
    );
  });

  it('serves clients configured from env() alone, as the code under test builds them', async () => {
    const saved = { ...process.env };
    try {
      delete process.env['AWS_PROFILE']; // would make the SDK skip the AWS_ACCESS_KEY_ID pair
      Object.assign(process.env, aws.env());
      // Same construction as lambdas/adapters/aws-clients.ts: nothing but the environment.
      const envDynamo = new DynamoDBClient({});
      const envS3 = new S3Client({ forcePathStyle: process.env['TANDEM_S3_FORCE_PATH_STYLE'] === 'true' });
      const got = await envDynamo.send(
        new GetItemCommand({ TableName: TABLE, Key: marshall({ pk: 'fraud-detector#t-1' }) }),
      );
      expect(got.Item).toBeDefined();
      await envS3.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: 'probe/env.txt',
          Body: Readable.from([Buffer.from('from env')]),
          ContentLength: 8,
        }),
      );
      const obj = await envS3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'probe/env.txt' }));
      expect(await obj.Body?.transformToString()).toBe('from env');
      envDynamo.destroy();
      envS3.destroy();
    } finally {
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    }
  });

  it('explains a port that is already taken', async () => {
    const port = Number(new URL(aws.s3Endpoint).port);
    await expect(startEmbeddedAws({ s3Port: port })).rejects.toThrow(
      /S3 \(s3rver\) could not listen on 127\.0\.0\.1:\d+: port \d+ .* already in use/,
    );
  });
});

describe('embedded AWS with a data folder', () => {
  it('keeps tables, items and objects across restarts and refuses a second user of the folder', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'tandem-embedded-data-'));
    try {
      const first = await startEmbeddedAws({ dataDir, buckets: [BUCKET] });
      const dynamo1 = new DynamoDBClient(first.clientConfig('dynamodb'));
      const s31 = new S3Client(first.clientConfig('s3'));
      await ensureTable(dynamo1, TABLE);
      await dynamo1.send(new PutItemCommand({ TableName: TABLE, Item: marshall({ pk: 'm#kept', v: 1 }) }));
      await s31.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'kept.txt', Body: 'still here' }));

      await expect(startEmbeddedAws({ dataDir })).rejects.toThrow(/another local stack/);

      dynamo1.destroy();
      s31.destroy();
      await first.stop();

      const second = await startEmbeddedAws({ dataDir });
      const dynamo2 = new DynamoDBClient(second.clientConfig('dynamodb'));
      const s32 = new S3Client(second.clientConfig('s3'));
      try {
        expect((await ensureTable(dynamo2, TABLE)).created).toBe(false);
        const got = await dynamo2.send(
          new GetItemCommand({ TableName: TABLE, Key: marshall({ pk: 'm#kept' }) }),
        );
        expect(got.Item && unmarshall(got.Item)).toEqual({ pk: 'm#kept', v: 1 });
        const obj = await s32.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'kept.txt' }));
        expect(await obj.Body?.transformToString()).toBe('still here');
        expect(await readFile(path.join(dataDir, 's3', BUCKET, 'kept.txt._S3rver_object'), 'utf8')).toBe(
          'still here',
        );
      } finally {
        dynamo2.destroy();
        s32.destroy();
        await second.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
