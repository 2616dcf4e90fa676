/**
 * Builds the demo model package: synthetic card transactions, a gradient-boosted tree classifier trained
 * in plain TypeScript, and an ONNX export shaped like a scikit-learn pipeline exported by skl2onnx
 * (named inputs, string one-hot encoders, TreeEnsembleClassifier, ZipMap).
 *
 * Everything is seeded, so every run writes the same bytes. Run with `npm run demo-model`.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import * as prettier from 'prettier';
import type { z } from 'zod';
import { manifestSchema, parseManifest } from '../../lambdas/core/manifest.ts';
import { loadModel } from '../../lambdas/core/model-loader.ts';
import { buildBaseline } from '../../lambdas/core/monitoring/baseline-builder.ts';
import { buildModel, type ModelSpec, type NodeSpec } from '../../tools/onnx-builder.ts';
import { mulberry32, type Rng } from '../../tools/mulberry32.ts';

const MODEL_NAME = 'fraud-detector';
const MODEL_VERSION = '1.0.0';
const TRAIN_SEED = 0x5eed_f4a1;
const DEMO_SEED = 0x0de3_0c5b;
const TRAINING_ROWS = 40_000;
const HOLDOUT_FRACTION = 0.2;
const DEMO_ROWS = 2_000;
/** The baseline's createdAt: fixed, so that regenerating it gives the same bytes. */
const BASELINE_CREATED_AT = '2026-12-06T00:00:00.000Z';
const TARGET_FRAUD_RATE = 0.03;

const BOOSTING = {
  trees: 100,
  maxDepth: 3,
  learningRate: 0.1,
  /** L2 penalty on leaf values (XGBoost's lambda). */
  lambda: 1,
  /** Minimum hessian sum per child: with ~3% positives, about 30 rows' worth of signal. */
  minChildWeight: 1,
  minChildRows: 20,
  maxBins: 64,
} as const;

const PACKAGE_DIR = dirname(fileURLToPath(import.meta.url));
const VERSION_DIR = join(PACKAGE_DIR, MODEL_VERSION);

// ---------------------------------------------------------------------------------------------------------
// Seeded randomness

function normal(rng: Rng, mean = 0, sd = 1): number {
  // Box-Muller; 1 - u keeps the log argument away from 0.
  const u = 1 - rng();
  const v = rng();
  return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

function logNormal(rng: Rng, median: number, sigma: number): number {
  return median * Math.exp(normal(rng, 0, sigma));
}

function exponential(rng: Rng, mean: number): number {
  return -mean * Math.log(1 - rng());
}

/** Knuth's method: fine for the small rates used here. */
function poisson(rng: Rng, rate: number): number {
  const limit = Math.exp(-rate);
  let k = 0;
  for (let p = rng(); p > limit; p *= rng()) k += 1;
  return k;
}

function weightedChoice<T>(rng: Rng, options: readonly (readonly [T, number])[]): T {
  const total = options.reduce((sum, [, weight]) => sum + weight, 0);
  let r = rng() * total;
  for (const [value, weight] of options) {
    r -= weight;
    if (r < 0) return value;
  }
  const last = options[options.length - 1];
  if (!last) throw new Error('weightedChoice needs options');
  return last[0];
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));
/** Features are rounded when generated so the CSV holds exactly what the model was trained on. */
const roundTo = (x: number, decimals: number): number => Math.round(x * 10 ** decimals) / 10 ** decimals;
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

// ---------------------------------------------------------------------------------------------------------
// The transactions

const MERCHANT_CATEGORIES = [
  'grocery',
  'restaurants',
  'fuel',
  'travel',
  'electronics',
  'online_retail',
  'jewelry',
  'gambling',
  'other',
] as const;
const CHANNELS = ['chip', 'contactless', 'swipe', 'online', 'manual'] as const;

type MerchantCategory = (typeof MERCHANT_CATEGORIES)[number];
type Channel = (typeof CHANNELS)[number];

interface Transaction {
  readonly amount: number;
  readonly hour_of_day: number;
  readonly day_of_week: number;
  readonly merchant_category: MerchantCategory;
  readonly channel: Channel;
  readonly card_present: boolean;
  readonly is_international: boolean;
  readonly distance_from_home_km: number;
  readonly txn_count_1h: number;
  readonly txn_count_24h: number;
  readonly amount_to_avg_ratio: number;
  readonly account_age_days: number;
  readonly customer_age: number;
  readonly failed_pin_24h: number;
  readonly new_device: boolean;
  readonly merchant_risk_score: number;
  readonly prior_chargebacks: number;
}

interface MerchantProfile {
  readonly share: number;
  readonly medianAmount: number;
  readonly risk: number;
  /** Share of card-not-present sales (online or keyed in). */
  readonly remoteShare: number;
}

const MERCHANTS: Record<MerchantCategory, MerchantProfile> = {
  grocery: { share: 0.22, medianAmount: 38, risk: 0.08, remoteShare: 0.04 },
  restaurants: { share: 0.16, medianAmount: 28, risk: 0.1, remoteShare: 0.08 },
  fuel: { share: 0.1, medianAmount: 45, risk: 0.15, remoteShare: 0.01 },
  travel: { share: 0.05, medianAmount: 280, risk: 0.3, remoteShare: 0.6 },
  electronics: { share: 0.06, medianAmount: 190, risk: 0.35, remoteShare: 0.4 },
  online_retail: { share: 0.17, medianAmount: 52, risk: 0.3, remoteShare: 0.97 },
  jewelry: { share: 0.02, medianAmount: 420, risk: 0.5, remoteShare: 0.25 },
  gambling: { share: 0.02, medianAmount: 90, risk: 0.65, remoteShare: 0.85 },
  other: { share: 0.2, medianAmount: 35, risk: 0.12, remoteShare: 0.15 },
};

/** Half the Earth's circumference: no place is farther from home. */
const MAX_DISTANCE_KM = 20_000;

/** Relative card activity by local hour: quiet at night, busiest late afternoon. */
const HOUR_WEIGHTS = [
  1.2, 0.7, 0.45, 0.35, 0.35, 0.6, 1.5, 3, 4.5, 5.5, 6.5, 7.5, 8.5, 7.5, 6.5, 6.5, 7, 8, 8.5, 8, 6.5, 5, 3.5,
  2,
];
/** Monday = 0: weekend shopping peaks. */
const DAY_WEIGHTS = [1, 1, 1.02, 1.05, 1.2, 1.35, 1.1];

function pickChannel(rng: Rng, profile: MerchantProfile): Channel {
  if (rng() < profile.remoteShare) return rng() < 0.9 ? 'online' : 'manual';
  return weightedChoice<Channel>(rng, [
    ['chip', 0.5],
    ['contactless', 0.4],
    ['swipe', 0.1],
  ]);
}

function pickHour(rng: Rng, remote: boolean): number {
  // Online shopping is spread more evenly over the day than shop visits.
  const weights = HOUR_WEIGHTS.map((w, hour) => [hour, remote ? w + 3 : w] as const);
  return weightedChoice(rng, weights);
}

function generateTransaction(rng: Rng): Transaction {
  const customer_age = Math.round(clamp(normal(rng, 45, 15), 18, 95));
  // An account cannot be older than the customer's adult life.
  const account_age_days = Math.min(Math.floor(exponential(rng, 1100)), (customer_age - 18) * 365 + 30);
  const merchant_category = weightedChoice(
    rng,
    MERCHANT_CATEGORIES.map((c) => [c, MERCHANTS[c].share] as const),
  );
  const profile = MERCHANTS[merchant_category];
  const channel = pickChannel(rng, profile);
  const card_present = channel === 'chip' || channel === 'contactless' || channel === 'swipe';
  const is_international = rng() < (merchant_category === 'travel' ? 0.3 : card_present ? 0.02 : 0.07);
  // For card-not-present sales the distance is the buyer's IP geolocation, hence the wider spread.
  const distance_from_home_km = Math.min(
    is_international ? logNormal(rng, 1500, 0.9) : logNormal(rng, card_present ? 6 : 25, 1.1),
    MAX_DISTANCE_KM,
  );
  const amount = logNormal(rng, profile.medianAmount, 0.8);
  const customerAverageAmount = logNormal(rng, 60, 0.5);
  const txn_count_1h = poisson(rng, 0.35);
  const new_device = card_present ? channel === 'contactless' && rng() < 0.02 : rng() < 0.08;
  return {
    amount: roundTo(amount, 2),
    hour_of_day: pickHour(rng, !card_present),
    day_of_week: weightedChoice(
      rng,
      DAY_WEIGHTS.map((w, day) => [day, w] as const),
    ),
    merchant_category,
    channel,
    card_present,
    is_international,
    distance_from_home_km: roundTo(distance_from_home_km, 2),
    txn_count_1h,
    txn_count_24h: txn_count_1h + poisson(rng, 3.5),
    amount_to_avg_ratio: roundTo(amount / customerAverageAmount, 4),
    account_age_days,
    customer_age,
    failed_pin_24h: poisson(rng, 0.05),
    new_device,
    merchant_risk_score: roundTo(clamp(normal(rng, profile.risk, 0.08), 0, 1), 3),
    prior_chargebacks: poisson(rng, 0.08),
  };
}

const CHANNEL_RISK: Record<Channel, number> = {
  chip: -1,
  contactless: -0.4,
  swipe: 0.3,
  online: 0.8,
  manual: 1.4,
};

/**
 * The hidden fraud model: log-odds (before the intercept) from the usual red flags, with a few
 * interactions a linear model would miss (account takeover at night, a new device abroad).
 */
function fraudLogOdds(tx: Transaction): number {
  const night = tx.hour_of_day <= 5;
  const logRatio = Math.log(Math.max(tx.amount_to_avg_ratio, 1e-3));
  let z = CHANNEL_RISK[tx.channel];
  z += night ? 1.25 : 0;
  z += Math.max(0, logRatio);
  z += tx.new_device ? 1.5 : 0;
  z += 0.5 * Math.log1p(tx.distance_from_home_km / 50);
  z += tx.is_international ? 0.7 : 0;
  z += 3 * tx.merchant_risk_score;
  z += 0.6 * Math.min(tx.txn_count_1h, 6);
  z += 1.1 * Math.min(tx.failed_pin_24h, 3);
  z += tx.account_age_days < 60 ? 1.25 : 0;
  z += 0.7 * Math.min(tx.prior_chargebacks, 3);
  z += night && !tx.card_present && logRatio > 1 ? 1.4 : 0;
  z += tx.new_device && tx.is_international ? 1.1 : 0;
  z += tx.customer_age >= 70 && !tx.card_present ? 0.55 : 0;
  return z;
}

/** The intercept that makes the mean fraud probability hit the target rate (bisection; it is monotone). */
function solveIntercept(logOdds: readonly number[], targetRate: number): number {
  let lo = -30;
  let hi = 10;
  for (let i = 0; i < 100; i += 1) {
    const mid = (lo + hi) / 2;
    const rate = logOdds.reduce((sum, z) => sum + sigmoid(mid + z), 0) / logOdds.length;
    if (rate < targetRate) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

interface LabelledData {
  readonly transactions: Transaction[];
  readonly labels: Uint8Array;
}

function generateTransactions(rng: Rng, rows: number): Transaction[] {
  return Array.from({ length: rows }, () => generateTransaction(rng));
}

function generateLabelledData(seed: number, rows: number): LabelledData {
  const rng = mulberry32(seed);
  const transactions = generateTransactions(rng, rows);
  // Unobserved causes (a leaked card, a fraudster's habits) the features cannot fully capture.
  const logOdds = transactions.map((tx) => fraudLogOdds(tx) + normal(rng, 0, 1));
  const intercept = solveIntercept(logOdds, TARGET_FRAUD_RATE);
  const labels = Uint8Array.from(logOdds, (z) => (rng() < sigmoid(intercept + z) ? 1 : 0));
  return { transactions, labels };
}

// ---------------------------------------------------------------------------------------------------------
// The features, in manifest order

type ManifestInput = z.input<typeof manifestSchema>;
type FeatureDef = ManifestInput['features'][number] & { readonly name: keyof Transaction };

const FEATURES: readonly FeatureDef[] = [
  {
    name: 'amount',
    type: 'number',
    required: true,
    min: 0,
    max: 100_000,
    description: 'Transaction amount in the card currency.',
  },
  {
    name: 'hour_of_day',
    type: 'integer',
    required: true,
    min: 0,
    max: 23,
    description: 'Local hour of the transaction.',
  },
  {
    name: 'day_of_week',
    type: 'integer',
    required: true,
    min: 0,
    max: 6,
    description: 'Day of the week, Monday = 0.',
  },
  {
    name: 'merchant_category',
    type: 'category',
    required: true,
    values: [...MERCHANT_CATEGORIES],
    unknown: 'reject',
    description: 'Merchant category group.',
  },
  {
    name: 'channel',
    type: 'category',
    required: true,
    values: [...CHANNELS],
    unknown: 'reject',
    description: 'How the card was used: chip, contactless, swipe, online or manual (keyed in).',
  },
  {
    name: 'card_present',
    type: 'boolean',
    required: true,
    description: 'The physical card was at the terminal (chip, contactless or swipe).',
  },
  {
    name: 'is_international',
    type: 'boolean',
    required: true,
    description: 'The merchant is in another country than the card issuer.',
  },
  {
    name: 'distance_from_home_km',
    type: 'number',
    required: true,
    min: 0,
    max: MAX_DISTANCE_KM,
    description:
      "Distance from the cardholder's home to the merchant (to the buyer's IP location when online).",
  },
  {
    name: 'txn_count_1h',
    type: 'integer',
    required: true,
    min: 0,
    max: 500,
    description: 'Earlier transactions on the card in the previous hour.',
  },
  {
    name: 'txn_count_24h',
    type: 'integer',
    required: true,
    min: 0,
    max: 5_000,
    description: 'Earlier transactions on the card in the previous 24 hours.',
  },
  {
    name: 'amount_to_avg_ratio',
    type: 'number',
    required: true,
    min: 0,
    max: 10_000,
    description: "Amount divided by the cardholder's average transaction amount.",
  },
  {
    name: 'account_age_days',
    type: 'integer',
    required: true,
    min: 0,
    max: 36_500,
    description: 'Age of the card account in days.',
  },
  {
    name: 'customer_age',
    type: 'integer',
    required: true,
    min: 18,
    max: 100,
    description: "Cardholder's age in years.",
  },
  {
    name: 'failed_pin_24h',
    type: 'integer',
    required: false,
    min: 0,
    max: 100,
    default: 0,
    description: 'Failed PIN attempts on the card in the previous 24 hours; 0 when not sent.',
  },
  {
    name: 'new_device',
    type: 'boolean',
    required: false,
    default: false,
    description: 'First transaction from this device or wallet token; false when not sent.',
  },
  {
    name: 'merchant_risk_score',
    type: 'number',
    required: true,
    min: 0,
    max: 1,
    description: "The merchant's historical fraud risk, 0 (safe) to 1.",
  },
  {
    name: 'prior_chargebacks',
    type: 'integer',
    required: true,
    min: 0,
    max: 1_000,
    description: "Chargebacks on the cardholder's account so far.",
  },
];

interface CategoryInput {
  readonly name: keyof Transaction;
  readonly values: readonly string[];
}

const NUMERIC_FEATURES = FEATURES.filter((f) => f.type !== 'category' && f.type !== 'string').map(
  (f) => f.name,
);
const CATEGORY_INPUTS: readonly CategoryInput[] = FEATURES.flatMap((f) =>
  f.type === 'category' ? [{ name: f.name, values: f.values ?? [] }] : [],
);
/** Columns the trees see: the numeric input, then each category's one-hot block (the ONNX Concat order). */
const MODEL_COLUMNS = [
  ...NUMERIC_FEATURES,
  ...CATEGORY_INPUTS.flatMap((c) => c.values.map((v) => `${c.name}=${v}`)),
];

function featureProblem(f: FeatureDef, value: Transaction[keyof Transaction]): string | undefined {
  switch (f.type) {
    case 'number':
    case 'integer':
      if (typeof value !== 'number' || !Number.isFinite(value)) return 'is not a finite number';
      if (f.type === 'integer' && !Number.isInteger(value)) return 'is not an integer';
      if (f.min !== undefined && value < f.min) return `is below the minimum ${f.min}`;
      if (f.max !== undefined && value > f.max) return `is above the maximum ${f.max}`;
      return undefined;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : 'is not a boolean';
    default:
      return typeof value === 'string' && f.values?.includes(value) ? undefined : 'is not an allowed value';
  }
}

/** The generated rows must be ones the served model accepts, or the demo dataset would be rejected. */
function assertMatchesManifest(transactions: readonly Transaction[]): void {
  transactions.forEach((tx, row) => {
    for (const f of FEATURES) {
      const problem = featureProblem(f, tx[f.name]);
      if (problem) {
        throw new Error(`row ${row}: ${f.name} = ${String(tx[f.name])} ${problem} in the manifest`);
      }
    }
  });
}

/** Column-major float32 matrix: the trees must see the same float32 values as onnxruntime. */
type Columns = Float32Array[];

function encodeColumns(transactions: readonly Transaction[]): Columns {
  const numeric = NUMERIC_FEATURES.map((name) => Float32Array.from(transactions, (tx) => Number(tx[name])));
  const oneHot = CATEGORY_INPUTS.flatMap((c) =>
    c.values.map((value) => Float32Array.from(transactions, (tx) => (tx[c.name] === value ? 1 : 0))),
  );
  return [...numeric, ...oneHot];
}

function column(columns: Columns, feature: number): Float32Array {
  const values = columns[feature];
  if (!values) throw new Error(`no column ${feature}`);
  return values;
}

// ---------------------------------------------------------------------------------------------------------
// Gradient-boosted trees (logistic loss, second-order leaf values, histogram splits)

type TreeNode =
  | { readonly kind: 'leaf'; readonly value: number }
  | {
      readonly kind: 'split';
      readonly feature: number;
      /** float32-exact: `x <= threshold` goes to `left`, as BRANCH_LEQ's true branch. */
      readonly threshold: number;
      /** Loss reduction of the split, for the importance summary (not exported). */
      readonly gain: number;
      readonly left: TreeNode;
      readonly right: TreeNode;
    };

interface Booster {
  /** Raw log-odds before any tree (float32-exact, like ONNX's base_values). */
  readonly bias: number;
  readonly trees: TreeNode[];
}

interface BinnedColumn {
  /** Ascending float32 thresholds; bin b holds thresholds[b-1] < x <= thresholds[b]. */
  readonly thresholds: number[];
  readonly bins: Uint8Array;
}

/**
 * Split candidates at quantiles of the distinct values, each halfway to the next distinct value, rounded
 * to float32. Should rounding land on the upper value, the lower one is used so no row changes side.
 */
function quantileThresholds(values: Float32Array, maxBins: number): number[] {
  const distinct = [...new Set(values)].sort((a, b) => a - b);
  const thresholds = new Set<number>();
  for (let q = 1; q < maxBins; q += 1) {
    const i = Math.min(Math.floor((q / maxBins) * distinct.length), distinct.length - 2);
    const lo = distinct[i];
    const hi = distinct[i + 1];
    if (lo === undefined || hi === undefined) continue;
    const mid = Math.fround((lo + hi) / 2);
    thresholds.add(mid < hi ? mid : lo);
  }
  return [...thresholds].sort((a, b) => a - b);
}

function binColumn(values: Float32Array, maxBins: number): BinnedColumn {
  const thresholds = quantileThresholds(values, maxBins);
  const bins = Uint8Array.from(values, (x) => {
    let lo = 0;
    let hi = thresholds.length;
    // Count thresholds strictly below x: then x <= thresholds[t] exactly when bin <= t.
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((thresholds[mid] ?? Infinity) < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  });
  return { thresholds, bins };
}

interface SplitChoice {
  readonly feature: number;
  readonly bin: number;
  readonly gain: number;
}

interface GrowContext {
  readonly binned: readonly BinnedColumn[];
  readonly grad: Float64Array;
  readonly hess: Float64Array;
}

function leafWeight(g: number, h: number): number {
  return Math.fround((-BOOSTING.learningRate * g) / (h + BOOSTING.lambda));
}

function bestSplit(
  ctx: GrowContext,
  rows: Uint32Array,
  gTotal: number,
  hTotal: number,
): SplitChoice | undefined {
  const { lambda, minChildWeight, minChildRows, maxBins } = BOOSTING;
  const parentScore = (gTotal * gTotal) / (hTotal + lambda);
  const g = new Float64Array(maxBins);
  const h = new Float64Array(maxBins);
  const n = new Uint32Array(maxBins);
  let best: SplitChoice | undefined;
  ctx.binned.forEach(({ thresholds, bins }, feature) => {
    g.fill(0);
    h.fill(0);
    n.fill(0);
    for (const row of rows) {
      const b = bins[row] ?? 0;
      g[b] = (g[b] ?? 0) + (ctx.grad[row] ?? 0);
      h[b] = (h[b] ?? 0) + (ctx.hess[row] ?? 0);
      n[b] = (n[b] ?? 0) + 1;
    }
    let gLeft = 0;
    let hLeft = 0;
    let nLeft = 0;
    for (let bin = 0; bin < thresholds.length; bin += 1) {
      gLeft += g[bin] ?? 0;
      hLeft += h[bin] ?? 0;
      nLeft += n[bin] ?? 0;
      const gRight = gTotal - gLeft;
      const hRight = hTotal - hLeft;
      if (hLeft < minChildWeight || hRight < minChildWeight) continue;
      if (nLeft < minChildRows || rows.length - nLeft < minChildRows) continue;
      const gain = (gLeft * gLeft) / (hLeft + lambda) + (gRight * gRight) / (hRight + lambda) - parentScore;
      if (gain > (best?.gain ?? 1e-9)) best = { feature, bin, gain };
    }
  });
  return best;
}

function growTree(ctx: GrowContext, rows: Uint32Array, depth: number): TreeNode {
  let gTotal = 0;
  let hTotal = 0;
  for (const row of rows) {
    gTotal += ctx.grad[row] ?? 0;
    hTotal += ctx.hess[row] ?? 0;
  }
  const split = depth < BOOSTING.maxDepth ? bestSplit(ctx, rows, gTotal, hTotal) : undefined;
  const binned = split && ctx.binned[split.feature];
  const threshold = split && binned?.thresholds[split.bin];
  if (!split || !binned || threshold === undefined) {
    return { kind: 'leaf', value: leafWeight(gTotal, hTotal) };
  }
  const goesLeft = (row: number): boolean => (binned.bins[row] ?? 0) <= split.bin;
  return {
    kind: 'split',
    feature: split.feature,
    threshold,
    gain: split.gain,
    left: growTree(ctx, rows.filter(goesLeft), depth + 1),
    right: growTree(
      ctx,
      rows.filter((row) => !goesLeft(row)),
      depth + 1,
    ),
  };
}

function treeValue(tree: TreeNode, columns: Columns, row: number): number {
  let node = tree;
  while (node.kind === 'split') {
    // Both sides are float32 values, so this is the comparison onnxruntime makes.
    node = (column(columns, node.feature)[row] ?? NaN) <= node.threshold ? node.left : node.right;
  }
  return node.value;
}

function rawScores(booster: Booster, columns: Columns, rows: number): Float64Array {
  const scores = new Float64Array(rows).fill(booster.bias);
  for (const tree of booster.trees) {
    for (let row = 0; row < rows; row += 1) scores[row] = (scores[row] ?? 0) + treeValue(tree, columns, row);
  }
  return scores;
}

function trainBooster(columns: Columns, labels: Uint8Array): Booster {
  const rows = labels.length;
  const positives = labels.reduce((sum, y) => sum + y, 0);
  const bias = Math.fround(Math.log(positives / (rows - positives)));
  const ctx: GrowContext = {
    binned: columns.map((values) => binColumn(values, BOOSTING.maxBins)),
    grad: new Float64Array(rows),
    hess: new Float64Array(rows),
  };
  const allRows = Uint32Array.from({ length: rows }, (_, i) => i);
  const scores = new Float64Array(rows).fill(bias);
  const trees: TreeNode[] = [];
  for (let t = 0; t < BOOSTING.trees; t += 1) {
    for (let row = 0; row < rows; row += 1) {
      const p = sigmoid(scores[row] ?? 0);
      ctx.grad[row] = p - (labels[row] ?? 0);
      ctx.hess[row] = Math.max(p * (1 - p), 1e-12);
    }
    const tree = growTree(ctx, allRows, 0);
    trees.push(tree);
    for (let row = 0; row < rows; row += 1) scores[row] = (scores[row] ?? 0) + treeValue(tree, columns, row);
  }
  return { bias, trees };
}

/** Total split gain per model column, largest first: a quick look at what the trees rely on. */
function featureImportance(trees: readonly TreeNode[]): [string, number][] {
  const totals = new Map<string, number>();
  const visit = (node: TreeNode): void => {
    if (node.kind === 'leaf') return;
    const name = MODEL_COLUMNS[node.feature] ?? String(node.feature);
    totals.set(name, (totals.get(name) ?? 0) + node.gain);
    visit(node.left);
    visit(node.right);
  };
  trees.forEach(visit);
  const sum = [...totals.values()].reduce((a, b) => a + b, 0);
  return [...totals].map(([name, gain]): [string, number] => [name, gain / sum]).sort((a, b) => b[1] - a[1]);
}

// ---------------------------------------------------------------------------------------------------------
// Metrics

/** ROC AUC as the Mann-Whitney statistic, ties counted as half. */
function rocAuc(scores: ArrayLike<number>, labels: Uint8Array): number {
  const order = Array.from({ length: labels.length }, (_, i) => i).sort(
    (a, b) => (scores[a] ?? 0) - (scores[b] ?? 0),
  );
  let rankSumPositives = 0;
  let positives = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j < order.length && scores[order[j] ?? 0] === scores[order[i] ?? 0]) j += 1;
    const averageRank = (i + j + 1) / 2;
    for (let k = i; k < j; k += 1) {
      if (labels[order[k] ?? 0] === 1) {
        rankSumPositives += averageRank;
        positives += 1;
      }
    }
    i = j;
  }
  const negatives = labels.length - positives;
  return (rankSumPositives - (positives * (positives + 1)) / 2) / (positives * negatives);
}

function logLoss(probabilities: ArrayLike<number>, labels: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < labels.length; i += 1) {
    const p = clamp(probabilities[i] ?? 0, 1e-15, 1 - 1e-15);
    sum -= labels[i] === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return sum / labels.length;
}

// ---------------------------------------------------------------------------------------------------------
// ONNX export

const PROBABILITY_TENSOR = 'probability_tensor';
const CLASS_LABELS = { ints: [0, 1] };

interface FlatTrees {
  readonly nodes: {
    treeIds: number[];
    nodeIds: number[];
    featureIds: number[];
    values: number[];
    modes: string[];
    trueIds: number[];
    falseIds: number[];
  };
  readonly leaves: { treeIds: number[]; nodeIds: number[]; weights: number[] };
}

/** Numbers nodes in pre-order per tree, the layout XGBoost's ONNX export uses. */
function flattenTrees(trees: readonly TreeNode[]): FlatTrees {
  const flat: FlatTrees = {
    nodes: { treeIds: [], nodeIds: [], featureIds: [], values: [], modes: [], trueIds: [], falseIds: [] },
    leaves: { treeIds: [], nodeIds: [], weights: [] },
  };
  trees.forEach((tree, treeId) => {
    let nextId = 0;
    const visit = (node: TreeNode): number => {
      const id = nextId;
      nextId += 1;
      const slot = flat.nodes.nodeIds.length;
      flat.nodes.treeIds.push(treeId);
      flat.nodes.nodeIds.push(id);
      if (node.kind === 'leaf') {
        flat.nodes.featureIds.push(0);
        flat.nodes.values.push(0);
        flat.nodes.modes.push('LEAF');
        flat.nodes.trueIds.push(0);
        flat.nodes.falseIds.push(0);
        flat.leaves.treeIds.push(treeId);
        flat.leaves.nodeIds.push(id);
        flat.leaves.weights.push(node.value);
        return id;
      }
      flat.nodes.featureIds.push(node.feature);
      flat.nodes.values.push(node.threshold);
      flat.nodes.modes.push('BRANCH_LEQ');
      flat.nodes.trueIds.push(0);
      flat.nodes.falseIds.push(0);
      // Children are numbered after their parent, so their ids are patched in once known.
      flat.nodes.trueIds[slot] = visit(node.left);
      flat.nodes.falseIds[slot] = visit(node.right);
      return id;
    };
    visit(tree);
  });
  return flat;
}

function treeEnsembleNode(booster: Booster): NodeSpec {
  const { nodes, leaves } = flattenTrees(booster.trees);
  return {
    op: 'TreeEnsembleClassifier',
    domain: 'ai.onnx.ml',
    name: 'TreeEnsembleClassifier',
    inputs: ['features'],
    outputs: ['label', PROBABILITY_TENSOR],
    attrs: {
      classlabels_int64s: CLASS_LABELS,
      post_transform: 'LOGISTIC',
      base_values: { floats: [booster.bias] },
      nodes_treeids: { ints: nodes.treeIds },
      nodes_nodeids: { ints: nodes.nodeIds },
      nodes_featureids: { ints: nodes.featureIds },
      nodes_values: { floats: nodes.values },
      nodes_modes: nodes.modes,
      nodes_truenodeids: { ints: nodes.trueIds },
      nodes_falsenodeids: { ints: nodes.falseIds },
      nodes_missing_value_tracks_true: { ints: nodes.modes.map(() => 0) },
      class_treeids: { ints: leaves.treeIds },
      class_nodeids: { ints: leaves.nodeIds },
      class_ids: { ints: leaves.treeIds.map(() => 0) },
      class_weights: { floats: leaves.weights },
    },
  };
}

/** Each string input is one-hot encoded ([N, 1, C]) and flattened to [N, C], as skl2onnx does per column. */
function oneHotNodes(input: CategoryInput): NodeSpec[] {
  return [
    {
      op: 'OneHotEncoder',
      domain: 'ai.onnx.ml',
      name: `OneHotEncoder_${input.name}`,
      inputs: [input.name],
      outputs: [`${input.name}_onehot`],
      attrs: { cats_strings: [...input.values], zeros: 1 },
    },
    {
      op: 'Flatten',
      name: `Flatten_${input.name}`,
      inputs: [`${input.name}_onehot`],
      outputs: [`${input.name}_flat`],
      attrs: { axis: 1 },
    },
  ];
}

/** The exported model; `withZipMap: false` gives the verification copy that returns the probability tensor. */
function modelSpec(booster: Booster, withZipMap: boolean): ModelSpec {
  const nodes: NodeSpec[] = [
    ...CATEGORY_INPUTS.flatMap(oneHotNodes),
    {
      op: 'Concat',
      name: 'Concat_features',
      inputs: ['numeric', ...CATEGORY_INPUTS.map((c) => `${c.name}_flat`)],
      outputs: ['features'],
      attrs: { axis: 1 },
    },
    treeEnsembleNode(booster),
  ];
  if (withZipMap) {
    nodes.push({
      op: 'ZipMap',
      domain: 'ai.onnx.ml',
      name: 'ZipMap',
      inputs: [PROBABILITY_TENSOR],
      outputs: ['probabilities'],
      attrs: { classlabels_int64s: CLASS_LABELS },
    });
  }
  return {
    graphName: MODEL_NAME,
    producer: 'tandem-demo-model',
    inputs: [
      { name: 'numeric', type: { tensor: 'float', shape: ['N', NUMERIC_FEATURES.length] } },
      ...CATEGORY_INPUTS.map((c) => ({ name: c.name, type: { tensor: 'string' as const, shape: ['N', 1] } })),
    ],
    outputs: [
      { name: 'label', type: { tensor: 'int64', shape: ['N'] } },
      withZipMap
        ? { name: 'probabilities', type: { seqMap: { key: 'int64' } } }
        : { name: PROBABILITY_TENSOR, type: { tensor: 'float', shape: ['N', 2] } },
    ],
    nodes,
  };
}

function onnxFeeds(transactions: readonly Transaction[]): Record<string, ort.Tensor> {
  const k = NUMERIC_FEATURES.length;
  const numeric = new Float32Array(transactions.length * k);
  transactions.forEach((tx, row) =>
    NUMERIC_FEATURES.forEach((name, j) => (numeric[row * k + j] = Number(tx[name]))),
  );
  const feeds: Record<string, ort.Tensor> = {
    numeric: new ort.Tensor('float32', numeric, [transactions.length, k]),
  };
  for (const c of CATEGORY_INPUTS) {
    feeds[c.name] = new ort.Tensor(
      'string',
      transactions.map((tx) => String(tx[c.name])),
      [transactions.length, 1],
    );
  }
  return feeds;
}

async function createSession(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
}

/**
 * Rows sitting exactly on split thresholds, where BRANCH_LEQ and BRANCH_LT would disagree: training data
 * never lands on the midpoint thresholds, so without these a wrong comparison would go unnoticed.
 */
function boundaryRows(trees: readonly TreeNode[], templates: readonly Transaction[]): Transaction[] {
  const rows: Transaction[] = [];
  const visit = (node: TreeNode): void => {
    if (node.kind === 'leaf') return;
    const name = NUMERIC_FEATURES[node.feature];
    const type = FEATURES.find((f) => f.name === name)?.type;
    // Varying the rest of the row sends the boundary values down different paths of the other trees.
    const template = templates[rows.length % templates.length];
    if (name && template && (type === 'number' || type === 'integer')) {
      rows.push({ ...template, [name]: node.threshold });
    }
    visit(node.left);
    visit(node.right);
  };
  trees.forEach(visit);
  return rows;
}

/**
 * Checks onnxruntime against our own tree walk: the probability tensor from the ZipMap-free copy, and the
 * label from the shipped model itself (ZipMap is not needed for it, so onnxruntime-node can fetch it).
 * Returns the largest probability difference.
 */
async function verifyExport(
  models: { readonly shipped: Uint8Array; readonly withoutZipMap: Uint8Array },
  booster: Booster,
  transactions: readonly Transaction[],
): Promise<number> {
  const expected = rawScores(booster, encodeColumns(transactions), transactions.length).map(sigmoid);
  const feeds = onnxFeeds(transactions);
  const probs = (await (await createSession(models.withoutZipMap)).run(feeds))[PROBABILITY_TENSOR];
  const labels = (await (await createSession(models.shipped)).run(feeds, ['label'])).label;
  if (!probs || !(probs.data instanceof Float32Array) || probs.dims.join() !== `${transactions.length},2`) {
    throw new Error(`ONNX probability output is not float32 [${transactions.length}, 2]`);
  }
  if (!labels || !(labels.data instanceof BigInt64Array)) throw new Error('ONNX label output is not int64');
  let maxDiff = 0;
  for (let row = 0; row < transactions.length; row += 1) {
    const p = expected[row] ?? NaN;
    const diff = Math.max(
      Math.abs((probs.data[2 * row] ?? NaN) - (1 - p)),
      Math.abs((probs.data[2 * row + 1] ?? NaN) - p),
    );
    maxDiff = Math.max(maxDiff, Number.isNaN(diff) ? Infinity : diff);
    if (labels.data[row] !== (p > 0.5 ? 1n : 0n)) {
      throw new Error(`ONNX label ${labels.data[row]} differs from the tree walk (p=${p}) at row ${row}`);
    }
  }
  if (!(maxDiff < 1e-5)) throw new Error(`ONNX probabilities differ from the tree walk by up to ${maxDiff}`);
  return maxDiff;
}

// ---------------------------------------------------------------------------------------------------------
// Package files

function manifest(): ManifestInput {
  return {
    schemaVersion: 1,
    name: MODEL_NAME,
    version: MODEL_VERSION,
    task: 'binary-classification',
    description:
      `Demo card-transaction fraud detector: gradient-boosted trees on ${FEATURES.length} transaction features, ` +
      'trained on synthetic data by models/fraud-detector/train.ts. Class 1 = fraud.',
    idField: 'transaction_id',
    features: [...FEATURES],
    inputs: [
      { name: 'numeric', type: 'float32', features: [...NUMERIC_FEATURES] },
      ...CATEGORY_INPUTS.map((c) => ({ name: c.name, type: 'string' as const, features: [c.name] })),
    ],
    outputs: { label: 'label', probabilities: 'probabilities' },
    cache: { maxAgeSeconds: 86_400, ttlSeconds: 604_800 },
  };
}

function csvCell(value: Transaction[keyof Transaction]): string {
  // Categories are plain identifiers and numbers are pre-rounded, so no quoting or formatting is needed.
  return String(value);
}

function demoCsv(transactions: readonly Transaction[]): string {
  const header = ['transaction_id', ...FEATURES.map((f) => f.name)].join(',');
  const lines = transactions.map((tx, i) =>
    [`txn-${String(i + 1).padStart(6, '0')}`, ...FEATURES.map((f) => csvCell(tx[f.name]))].join(','),
  );
  return `${[header, ...lines].join('\n')}\n`;
}

function writeFile(path: string, contents: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, contents);
  const sha = createHash('sha256').update(contents).digest('hex').slice(0, 12);
  console.log(`  wrote ${relative(process.cwd(), path)} (${contents.length} bytes, sha256 ${sha})`);
}

/** JSON as the repository's Prettier settings print it, so `npm run lint` accepts the generated files. */
async function prettyJson(value: unknown, path: string): Promise<string> {
  const options = (await prettier.resolveConfig(path)) ?? {};
  return prettier.format(JSON.stringify(value, null, 2), { ...options, filepath: path });
}

// ---------------------------------------------------------------------------------------------------------

interface Metrics {
  readonly fraudRate: number;
  readonly trainAuc: number;
  readonly trainLogLoss: number;
  readonly holdoutAuc: number;
  readonly holdoutLogLoss: number;
  /** What always predicting the base rate scores: the bar the model has to clear. */
  readonly holdoutBaselineLogLoss: number;
}

interface Trained {
  readonly booster: Booster;
  readonly metrics: Metrics;
  readonly holdoutRows: Transaction[];
}

function sliceColumns(columns: Columns, start: number, end: number): Columns {
  return columns.map((values) => values.subarray(start, end));
}

function trainAndEvaluate(transactions: readonly Transaction[], labels: Uint8Array): Trained {
  // Rows are independent draws, so the last 20% is as random a holdout as any.
  const split = Math.round(transactions.length * (1 - HOLDOUT_FRACTION));
  const columns = encodeColumns(transactions);
  const train = { columns: sliceColumns(columns, 0, split), labels: labels.subarray(0, split) };
  const holdout = { columns: sliceColumns(columns, split, labels.length), labels: labels.subarray(split) };
  const booster = trainBooster(train.columns, train.labels);
  const trainP = rawScores(booster, train.columns, train.labels.length).map(sigmoid);
  const holdoutP = rawScores(booster, holdout.columns, holdout.labels.length).map(sigmoid);
  const fraudRate = labels.reduce((sum, y) => sum + y, 0) / labels.length;
  const metrics: Metrics = {
    fraudRate,
    trainAuc: rocAuc(trainP, train.labels),
    trainLogLoss: logLoss(trainP, train.labels),
    holdoutAuc: rocAuc(holdoutP, holdout.labels),
    holdoutLogLoss: logLoss(holdoutP, holdout.labels),
    holdoutBaselineLogLoss: logLoss(new Float64Array(holdout.labels.length).fill(fraudRate), holdout.labels),
  };
  return { booster, metrics, holdoutRows: transactions.slice(split) };
}

interface Summary {
  readonly trained: Trained;
  readonly verifiedRows: number;
  readonly maxDiff: number;
  readonly modelBytes: number;
  readonly demoP: Float64Array;
}

function printSummary({ trained, verifiedRows, maxDiff, modelBytes, demoP }: Summary): void {
  const { booster, metrics: m, holdoutRows } = trained;
  const f4 = (x: number): string => x.toFixed(4);
  const importance = featureImportance(booster.trees)
    .slice(0, 6)
    .map(([name, share]) => `${name} ${(100 * share).toFixed(0)}%`);
  const flagged = demoP.filter((p) => p > 0.5).length;
  const meanDemoP = demoP.reduce((a, b) => a + b, 0) / demoP.length;
  console.log(
    [
      `rows: ${TRAINING_ROWS} (train ${TRAINING_ROWS - holdoutRows.length}, holdout ${holdoutRows.length}), ` +
        `fraud rate ${(100 * m.fraudRate).toFixed(2)}%`,
      `features: ${FEATURES.length} (${NUMERIC_FEATURES.length} numeric, ${CATEGORY_INPUTS.length} categories ` +
        `-> ${MODEL_COLUMNS.length} model columns)`,
      `trees: ${booster.trees.length}, depth ${BOOSTING.maxDepth}, learning rate ${BOOSTING.learningRate}`,
      `AUC: train ${f4(m.trainAuc)}, holdout ${f4(m.holdoutAuc)}`,
      `log loss: train ${f4(m.trainLogLoss)}, holdout ${f4(m.holdoutLogLoss)} ` +
        `(base rate only: ${f4(m.holdoutBaselineLogLoss)})`,
      `onnxruntime vs tree walk on ${verifiedRows} rows (holdout + on-threshold): ` +
        `max |diff| ${maxDiff.toExponential(2)}`,
      `top features by gain: ${importance.join(', ')}`,
      `model.onnx: ${modelBytes} bytes`,
      `demo rows: ${demoP.length}, flagged p > 0.5: ${flagged}, mean p ${f4(meanDemoP)}`,
    ].join('\n'),
  );
}

/** The drift monitor's baseline: the training rows as a CSV, scored by the exported model. */
async function trainingBaseline(
  manifestJson: unknown,
  modelBytes: Uint8Array,
  transactions: readonly Transaction[],
): Promise<unknown> {
  const model = await loadModel({ manifest: manifestJson, modelBytes });
  try {
    const csv = new TextEncoder().encode(demoCsv(transactions));
    return await buildBaseline(
      model,
      [
        {
          name: 'training.csv',
          bytes: async function* () {
            yield csv;
          },
        },
      ],
      {
        description: `the training data of train.ts (${transactions.length} rows, seed 0x${TRAIN_SEED.toString(16)})`,
        createdAt: BASELINE_CREATED_AT,
      },
    );
  } finally {
    await model.close();
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const { transactions, labels } = generateLabelledData(TRAIN_SEED, TRAINING_ROWS);
  const demo = generateTransactions(mulberry32(DEMO_SEED), DEMO_ROWS);
  assertMatchesManifest(transactions);
  assertMatchesManifest(demo);
  const manifestJson = manifest();
  parseManifest(manifestJson, `${MODEL_NAME}/${MODEL_VERSION}/manifest.json`);

  const trained = trainAndEvaluate(transactions, labels);
  const { booster, holdoutRows } = trained;
  const modelBytes = buildModel(modelSpec(booster, true));
  const checkRows = [...holdoutRows, ...boundaryRows(booster.trees, holdoutRows)];
  const maxDiff = await verifyExport(
    { shipped: modelBytes, withoutZipMap: buildModel(modelSpec(booster, false)) },
    booster,
    checkRows,
  );

  console.log(`${MODEL_NAME} ${MODEL_VERSION}`);
  const manifestPath = join(VERSION_DIR, 'manifest.json');
  const currentPath = join(PACKAGE_DIR, 'current.json');
  writeFile(join(VERSION_DIR, 'model.onnx'), modelBytes);
  writeFile(manifestPath, await prettyJson(manifestJson, manifestPath));
  writeFile(currentPath, await prettyJson({ version: MODEL_VERSION }, currentPath));
  writeFile(join(PACKAGE_DIR, 'demo-transactions.csv'), demoCsv(demo));
  const baselinePath = join(VERSION_DIR, 'baseline.json');
  writeFile(
    baselinePath,
    await prettyJson(await trainingBaseline(manifestJson, modelBytes, transactions), baselinePath),
  );

  const demoP = rawScores(booster, encodeColumns(demo), demo.length).map(sigmoid);
  printSummary({ trained, verifiedRows: checkRows.length, maxDiff, modelBytes: modelBytes.length, demoP });
  console.log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

await main();
