/** Shared setup of the infrastructure tests: apps built like `cdk synth` builds them (cdk.json context). */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TandemStack, type TandemStackProps } from '../../lib/tandem-stack.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

/** The context of cdk.json: Tandem's settings and the CDK feature flags the deployed app runs with. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
  };
  return cdkJson.context ?? {};
}

export interface TestAppOptions {
  /** Run esbuild and stage the assets (slow); otherwise bundling is skipped and assets are placeholders. */
  readonly bundle?: boolean;
  readonly outdir?: string;
}

export function testApp(options: TestAppOptions = {}): App {
  return new App({
    context: {
      ...cdkJsonContext(),
      ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
    },
    ...(options.outdir ? { outdir: options.outdir } : {}),
  });
}

/** A TandemStack in a fixed environment (so ARNs and regions resolve like a real deploy). */
export function testStack(app: App, props: TandemStackProps = {}, id = 'Tandem'): TandemStack {
  return new TandemStack(app, id, { env: { account: '123456789012', region: 'eu-west-1' }, ...props });
}

export function templateOf(props: TandemStackProps = {}): Template {
  return Template.fromStack(testStack(testApp(), props));
}
