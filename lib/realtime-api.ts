/**
 * The real-time lane: an HTTP API (IAM or JWT authorization, stage throttling, JSON access logs) in front of
 * the predict function's `live` alias (optionally with provisioned concurrency). The function reads models
 * from `models/` in the data bucket and the precomputed predictions table (writing it only with
 * write-through on), configured through the variables of lambdas/handlers/config.ts.
 */
import { Annotations, Duration, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { DATA_PREFIXES } from './data-bucket.ts';
import type { CachePolicyOverride } from '../lambdas/adapters/cache-policy-override.ts';
import { FUNCTION_ACCESS, grantObjectAccess } from './bucket-access.ts';
import { SETTINGS } from '../lambdas/core/settings.ts';
import { settingsEnvironment, TandemFunction } from './tandem-function.ts';

/** Callers sign requests with SigV4 (`iam`), or bring a JWT from an OIDC issuer. */
export type ApiAuth =
  'iam' | { readonly jwt: { readonly issuer: string; readonly audience: readonly string[] } };

export interface RealtimeApiProps {
  readonly bucket: s3.IBucket;
  readonly table: dynamodb.ITable;
  /** The model served when a request names none (`DEFAULT_MODEL`). */
  readonly defaultModel: string;
  /** @default 'iam' */
  readonly auth?: ApiAuth;
  /** @default SETTINGS.predictMemorySize (1769: one full vCPU) */
  readonly memorySize?: number;
  /** @default lambda.Architecture.X86_64 */
  readonly architecture?: lambda.Architecture;
  /**
   * Execution environments kept initialized (model loaded) on the `live` alias. 0 = none.
   * @default 0
   */
  readonly provisionedConcurrency?: number;
  /** @default SETTINGS.cacheBudgetMs (150, `CACHE_BUDGET_MS`) */
  readonly cacheBudgetMs?: number;
  /**
   * Cache max age and item TTL over the model manifests' (`CACHE_MAX_AGE_SECONDS`, `CACHE_TTL_SECONDS`).
   * @default - the manifests' `cache` policy
   */
  readonly cachePolicy?: CachePolicyOverride;
  /**
   * Share of real-time predictions captured under the data bucket's capture/ (0 = off).
   * @default SETTINGS.captureRealtimeRate (0.05, `CAPTURE_REALTIME_RATE`)
   */
  readonly captureRealtimeRate?: number;
  /** @default SETTINGS.writeThrough (false, `WRITE_THROUGH`) */
  readonly writeThrough?: boolean;
  /** @default SETTINGS.modelRefreshSeconds (60, `MODEL_REFRESH_SECONDS`) */
  readonly modelRefreshSeconds?: number;
  /** @default { rateLimit: 500, burstLimit: 1000 } requests per second for the whole stage */
  readonly throttle?: { readonly rateLimit: number; readonly burstLimit: number };
  /** @default SETTINGS.logRetentionDays (30) */
  readonly logRetention?: logs.RetentionDays;
}

/** The API's routes, all served by the predict function. */
export const API_ROUTES: ReadonlyArray<{ method: apigwv2.HttpMethod; path: string }> = [
  { method: apigwv2.HttpMethod.POST, path: '/predict' },
  { method: apigwv2.HttpMethod.POST, path: '/feedback' },
  { method: apigwv2.HttpMethod.GET, path: '/models' },
  { method: apigwv2.HttpMethod.GET, path: '/models/{name}' },
  { method: apigwv2.HttpMethod.GET, path: '/health' },
  { method: apigwv2.HttpMethod.GET, path: '/ready' },
  { method: apigwv2.HttpMethod.GET, path: '/openapi.json' },
  // The Open Inference Protocol (v2) REST routes.
  { method: apigwv2.HttpMethod.GET, path: '/v2' },
  { method: apigwv2.HttpMethod.GET, path: '/v2/health/live' },
  { method: apigwv2.HttpMethod.GET, path: '/v2/health/ready' },
  { method: apigwv2.HttpMethod.GET, path: '/v2/models/{name}' },
  { method: apigwv2.HttpMethod.GET, path: '/v2/models/{name}/ready' },
  { method: apigwv2.HttpMethod.POST, path: '/v2/models/{name}/infer' },
  { method: apigwv2.HttpMethod.GET, path: '/v2/models/{name}/versions/{version}' },
  { method: apigwv2.HttpMethod.GET, path: '/v2/models/{name}/versions/{version}/ready' },
  { method: apigwv2.HttpMethod.POST, path: '/v2/models/{name}/versions/{version}/infer' },
];

export class RealtimeApi extends Construct {
  public readonly api: apigwv2.HttpApi;
  public readonly stage: apigwv2.HttpStage;
  public readonly predict: TandemFunction;
  /** The `live` alias the API invokes (and provisioned concurrency is set on). */
  public readonly alias: lambda.Alias;
  public readonly accessLogGroup: logs.LogGroup;
  /** The API's base URL (the `$default` stage). */
  public readonly url: string;

  constructor(scope: Construct, id: string, props: RealtimeApiProps) {
    super(scope, id);
    // Values are checked once, by the Tandem construct (lib/settings.ts); the defaults are the settings'.
    const provisioned = props.provisionedConcurrency ?? SETTINGS.provisionedConcurrency.default;
    const memorySize = props.memorySize ?? SETTINGS.predictMemorySize.default;
    const throttle = props.throttle ?? {
      rateLimit: SETTINGS.apiRateLimit.default,
      burstLimit: SETTINGS.apiBurstLimit.default,
    };
    const writeThrough = props.writeThrough ?? SETTINGS.writeThrough.default;

    this.predict = new TandemFunction(this, 'Predict', {
      entry: 'lambdas/handlers/predict.ts',
      description:
        'Tandem real-time predictions (POST /predict, GET /models, /health, /ready, /openapi.json, /v2)',
      memorySize,
      // Cold start loads the model at init; a request itself is milliseconds, a large batch of instances less than a second.
      timeout: Duration.seconds(29),
      ...(props.architecture ? { architecture: props.architecture } : {}),
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
      onnxRuntime: true,
      environment: settingsEnvironment('predict', {
        modelsUri: props.bucket.s3UrlForObject(DATA_PREFIXES.models),
        modelName: props.defaultModel,
        tableName: props.table.tableName,
        captureBucket: props.bucket.bucketName,
        dataBucket: props.bucket.bucketName,
        captureRealtimeRate: props.captureRealtimeRate ?? SETTINGS.captureRealtimeRate.default,
        cacheBudgetMs: props.cacheBudgetMs ?? SETTINGS.cacheBudgetMs.default,
        writeThrough,
        modelRefreshSeconds: props.modelRefreshSeconds ?? SETTINGS.modelRefreshSeconds.default,
        logPayloads: SETTINGS.logPayloads.default,
        cacheMaxAgeSeconds: props.cachePolicy?.maxAgeSeconds,
        cacheTtlSeconds: props.cachePolicy?.ttlSeconds,
      }),
    });
    const role = this.predict.role;

    grantObjectAccess(role, props.bucket, FUNCTION_ACCESS.predict);
    props.table.grant(role, 'dynamodb:GetItem', 'dynamodb:BatchGetItem');
    if (writeThrough) props.table.grant(role, 'dynamodb:PutItem');

    this.alias = new lambda.Alias(this, 'Live', {
      aliasName: 'live',
      version: this.predict.function.currentVersion,
      description: 'The version the API serves',
      ...(provisioned > 0 ? { provisionedConcurrentExecutions: provisioned } : {}),
    });
    if (provisioned > 0 && memorySize >= 3008) {
      Annotations.of(this).addWarningV2(
        'tandem:provisioned-memory',
        `provisioned concurrency of ${provisioned} at ${memorySize} MB is billed around the clock`,
      );
    }

    const auth = props.auth ?? 'iam';
    const defaultAuthorizer =
      auth === 'iam'
        ? new HttpIamAuthorizer()
        : new HttpJwtAuthorizer('Jwt', auth.jwt.issuer, { jwtAudience: [...auth.jwt.audience] });

    this.api = new apigwv2.HttpApi(this, 'Api', {
      description: 'Tandem real-time predictions',
      createDefaultStage: false,
      defaultAuthorizer,
    });
    const integration = new HttpLambdaIntegration('Predict', this.alias, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    });
    this.integration = integration;
    for (const route of API_ROUTES) {
      this.api.addRoutes({ path: route.path, methods: [route.method], integration });
    }

    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention ?? (SETTINGS.logRetentionDays.default as logs.RetentionDays),
    });
    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle,
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogGroup),
        format: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            ip: '$context.identity.sourceIp',
            caller: '$context.identity.caller',
            user: '$context.identity.user',
            requestTime: '$context.requestTime',
            httpMethod: '$context.httpMethod',
            routeKey: '$context.routeKey',
            status: '$context.status',
            protocol: '$context.protocol',
            responseLength: '$context.responseLength',
            responseLatency: '$context.responseLatency',
            integrationLatency: '$context.integrationLatency',
            integrationError: '$context.integrationErrorMessage',
            authorizerError: '$context.authorizer.error',
          }),
        ),
      },
    });
    this.url = this.stage.url;
  }

  private readonly integration: HttpLambdaIntegration;
  private readonly extraRoutes: { method: apigwv2.HttpMethod; path: string }[] = [];

  /** Serves one more route with the predict function (POST /events when the stream lane is on). */
  public addFunctionRoute(method: apigwv2.HttpMethod, path: string): void {
    this.api.addRoutes({ path, methods: [method], integration: this.integration });
    this.extraRoutes.push({ method, path });
  }

  /**
   * Lets a principal call the API (IAM auth): `execute-api:Invoke` on each of its routes
   * (`<api-id>/<stage>/<METHOD>/<path>`, a path parameter as `*`), on any stage.
   */
  public grantInvoke(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['execute-api:Invoke'],
      resourceArns: [...API_ROUTES, ...this.extraRoutes].map((route) =>
        Stack.of(this).formatArn({
          service: 'execute-api',
          resource: this.api.apiId,
          resourceName: `*/${route.method}${route.path.replace(/\{[^}]+\}/g, '*')}`,
        }),
      ),
    });
  }
}
