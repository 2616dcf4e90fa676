/**
 * `tandem models rollout` and `models rollout-status`. Locally the rollout state machine runs in this
 * command, which prints each step and waits for the end (the API's per-version metrics come from the
 * files `npm start` writes in the data folder); on a deployed stack the command checks what it can,
 * starts an execution of the rollout state machine and returns (follow it with `models rollout-status`).
 */
import { randomBytes } from 'node:crypto';
import { SFNClient } from '@aws-sdk/client-sfn';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ModelStore } from '../../lambdas/adapters/s3-model-store.ts';
import { StepFunctionsRunStarter } from '../../lambdas/adapters/step-functions-starter.ts';
import { ModelLifecycle, type RolloutVerdict } from '../../lambdas/core/lifecycle/lifecycle.ts';
import { isInvalidPointer, readPointerDocument } from '../../lambdas/core/lifecycle/pointer-document.ts';
import {
  latestRollout,
  RolloutSteps,
  type RolloutReport,
  type RolloutRequest,
  type RolloutState,
} from '../../lambdas/core/lifecycle/rollout.ts';
import { rolloutThresholdsFromEnv } from '../../lambdas/core/lifecycle/rollout-checks.ts';
import { loadModelVersion } from '../../lambdas/core/model-registry.ts';
import { SETTINGS } from '../../lambdas/core/settings.ts';
import { problemsOf } from '../../lambdas/core/lifecycle/package-check.ts';
import { FileVersionMetrics } from '../version-metrics.ts';
import { runLocalRollout } from '../rollout-runner.ts';
import type { Target } from './target.ts';

export interface RolloutCommand {
  readonly model: string;
  readonly candidate: string;
  readonly steps: readonly number[];
  readonly bakeSeconds: number;
  readonly reason?: string;
}

export interface RolloutStarted {
  readonly rolloutId: string;
  /** Deployed: the execution started. */
  readonly executionName?: string;
  /** Locally: how it ended. */
  readonly report?: RolloutReport;
}

function verdictLine(v: RolloutVerdict): string {
  return `    ${v.passed ? 'ok  ' : 'FAIL'} ${v.check.padEnd(8)} ${v.message}`;
}

export function rolloutLines(report: RolloutReport): string[] {
  const plan = report.steps ? ` through ${report.steps.map((s) => `${s}%`).join(', ')}` : '';
  const bake = report.bakeSeconds !== undefined ? `, ${report.bakeSeconds}s bake per step` : '';
  const lines = [
    `rollout ${report.id}: ${report.model} ${report.live ?? '?'} -> ${report.candidate}${plan}${bake}`,
    `status: ${report.status}${report.step !== undefined ? ` (step ${report.step}${report.percent !== undefined ? `, ${report.percent}%` : ''})` : ''}; started ${report.startedAt}${report.endedAt ? `, ended ${report.endedAt}` : ''}`,
  ];
  if (report.ended) lines.push(`  ${report.ended}`);
  if (report.status === 'interrupted') {
    lines.push(
      '  no step has run since, and the pointer no longer carries it: the process running it stopped (a local rollout runs in its command)',
    );
  }
  for (const e of report.entries) {
    lines.push(
      `  ${e.at}  ${e.action.padEnd(14)}${e.percent !== undefined ? ` ${e.percent}%` : ''}  ${e.reason ?? ''}`,
    );
    if (e.action === 'rollout-check') lines.push(...(e.rollout?.checks ?? []).map(verdictLine));
  }
  return lines;
}

function stores(target: Target) {
  const store = new S3ModelStore(target.s3, target.bucket, target.prefix);
  const source = new S3ModelSource(target.s3, target.bucket, target.prefix);
  const loadVersion = (name: string, version: string) => loadModelVersion(source, name, version);
  const loadProblems = async (name: string, version: string) => {
    try {
      await (await loadVersion(name, version)).close();
      return [];
    } catch (error) {
      return problemsOf(error);
    }
  };
  return { store, loadVersion, loadProblems };
}

export async function startRollout(
  target: Target,
  command: RolloutCommand,
  out: (line: string) => void,
): Promise<RolloutStarted> {
  const rolloutId = randomBytes(6).toString('hex');
  const request: RolloutRequest = {
    rolloutId,
    model: command.model,
    candidate: command.candidate,
    steps: command.steps,
    bakeSeconds: command.bakeSeconds,
    by: await target.identity(),
    ...(command.reason !== undefined ? { reason: command.reason } : {}),
  };
  const { store, loadProblems } = stores(target);
  if (target.local === undefined) {
    if (!target.rolloutStateMachineArn) {
      throw new Error(
        `${target.label} has no RolloutStateMachineArn output: deploy this version of Tandem first`,
      );
    }
    // The refusals the state machine's Start would make, before anything starts (it makes them again).
    const metrics = { window: () => Promise.reject(new Error('not used')) };
    const steps = new RolloutSteps({
      store,
      loadProblems,
      metrics,
      thresholds: rolloutThresholdsFromEnv({}),
    });
    await steps.prepare(request);
    const client = new SFNClient(target.region ? { region: target.region } : {});
    try {
      await new StepFunctionsRunStarter(client, target.rolloutStateMachineArn).start(rolloutId, request);
    } finally {
      client.destroy();
    }
    return { rolloutId, executionName: rolloutId };
  }
  const steps = new RolloutSteps({
    store,
    loadProblems,
    metrics: new FileVersionMetrics(target.dataDir!),
    thresholds: rolloutThresholdsFromEnv(process.env),
  });
  await steps.prepare(request);
  const refresh = SETTINGS.modelRefreshSeconds.default;
  if (command.bakeSeconds <= refresh) {
    out(
      `note: the API takes a pointer change up within MODEL_REFRESH_SECONDS (${refresh} s unless npm start was given another): a bake of ${command.bakeSeconds}s may see little or no traffic on the candidate (start the stack with MODEL_REFRESH_SECONDS=1 to try short bakes)`,
    );
  }
  const bake = `baking ${command.bakeSeconds}s`;
  // Ctrl+C rolls the rollout back (the canary ends) rather than leaving it at its percentage.
  const stop = new AbortController();
  const onSignal = () => {
    out('  stopping: the rollout is rolled back (Ctrl+C again to leave the canary as it is)');
    process.removeListener('SIGINT', onSignal);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  await runLocalRollout(steps, request, {
    signal: stop.signal,
    onStep: (task, state: RolloutState) => {
      const percent = state.steps[state.step - 1];
      if (task === 'Start') {
        out(
          `rollout ${rolloutId}: ${state.model} ${state.live} -> ${state.candidate} through ${state.steps.map((s) => `${s}%`).join(', ')}`,
        );
        out(`  step 1 of ${state.steps.length}: ${state.candidate} takes ${percent}%; ${bake}`);
      } else if (task === 'Check') {
        out(`  check of step ${state.step} (${percent}%):`);
        for (const v of state.checks ?? []) out(verdictLine(v));
      } else if (task === 'Advance' && state.decision === 'bake') {
        out(`  step ${state.step} of ${state.steps.length}: ${state.candidate} takes ${percent}%; ${bake}`);
      }
      if (state.outcome) out(`  ${state.outcome.message}`);
    },
    notify: (subject) => out(`  notified: ${subject} (deployed: published to the alarm topic)`),
  }).finally(() => process.removeListener('SIGINT', onSignal));
  const report = await statusOf(target, command.model);
  return { rolloutId, ...(report ? { report } : {}) };
}

/** The model's latest rollout, from its history and pointer. */
export async function statusOf(target: Target, model: string): Promise<RolloutReport | undefined> {
  const { store, loadVersion } = stores(target);
  const lifecycle = new ModelLifecycle(store, { loadVersion, identity: () => target.identity() });
  const [history, stored] = await Promise.all([lifecycle.history(model), store.readPointer(model)]);
  const document = stored ? readPointerDocument(stored.body) : undefined;
  return latestRollout(history.entries, document && !isInvalidPointer(document) ? document : undefined);
}
