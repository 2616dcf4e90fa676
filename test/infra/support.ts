/** Shared setup of the infrastructure tests: apps built like `cdk synth` builds them (cdk.json context). */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';

import * as fs from 'node:fs';
import * as path from 'node:path';
import { TandemStack, type TandemStackProps } from '../../lib/tandem-stack.ts';
import { expectWithMessage } from '../support/expect-message.ts';

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

export type Resource = {
  Type: string;
  Properties?: Record<string, unknown>;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
};
export type Statement = {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
};

export function resources(template: Template, type: string): Record<string, Resource> {
  return template.findResources(type) as Record<string, Resource>;
}

export function onlyResource(template: Template, type: string, logicalIdPart = ''): [string, Resource] {
  const found = Object.entries(resources(template, type)).filter(([id]) => id.includes(logicalIdPart));
  expectWithMessage(found, `${type} matching "${logicalIdPart}"`).toHaveLength(1);
  return found[0]!;
}

/** The logical id of the role of the function whose logical id contains `part`. */
export function roleOf(template: Template, part: string): string {
  const [, fn] = onlyResource(template, 'AWS::Lambda::Function', part);
  return (fn.Properties!['Role'] as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
}

/** Every statement of every policy attached to a role. */
export function statementsOf(template: Template, roleLogicalId: string): Statement[] {
  return Object.values(resources(template, 'AWS::IAM::Policy'))
    .filter((p) => (p.Properties!['Roles'] as Array<{ Ref: string }>).some((r) => r.Ref === roleLogicalId))
    .flatMap((p) => (p.Properties!['PolicyDocument'] as { Statement: Statement[] }).Statement);
}

export const list = (value: string | string[]): string[] => (Array.isArray(value) ? value : [value]);
export const actionsOf = (statements: Statement[]): string[] =>
  [...new Set(statements.flatMap((s) => list(s.Action)))].sort();

/** A resource as a readable string: `${Logical.Attr}` for GetAtt, `${Logical}` for Ref, joins concatenated. */
export function flat(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (v['Fn::Join']) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(flat).join(sep);
  }
  if (v['Fn::GetAtt']) return `\${${(v['Fn::GetAtt'] as string[]).join('.')}}`;
  if (v['Ref']) return `\${${v['Ref'] as string}}`;
  return JSON.stringify(value);
}
