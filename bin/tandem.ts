#!/usr/bin/env node
/**
 * The CDK app: `npx cdk synth` / `npx cdk deploy`. Settings come from cdk.json "context" or `-c key=value`
 * (lib/settings.ts, docs/deploy.md); the account and region from the CLI's profile.
 */
import { App } from 'aws-cdk-lib';
import { readSettings, SettingsError, type SettingName } from '../lib/settings.ts';
import { TandemStack } from '../lib/tandem-stack.ts';

const app = new App();
let settings;
try {
  settings = readSettings((key: SettingName) => app.node.tryGetContext(key));
} catch (error) {
  if (error instanceof SettingsError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}

new TandemStack(app, settings.stackName, {
  ...settings.props,
  env: { account: process.env['CDK_DEFAULT_ACCOUNT'], region: process.env['CDK_DEFAULT_REGION'] },
});
