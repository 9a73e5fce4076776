/**
 * `wct compare`: training runs side by side. Reads each run directory written by `wct-train`
 * (summary.json, metrics.jsonl, recipe.json) into one row and one pair of loss curves, and writes
 * `compare.md` (table + embedded chart), `compare.json` (rows + curves), `loss.svg` and `loss.png`.
 *
 * summary.json must be a RunSummary (src/train/run-recipe.ts) as the current trainer writes it: a summary
 * lacking a field (one written by an older trainer) or holding one of the wrong type, a missing or unparsable
 * summary.json or metrics.jsonl, or a bad metrics line is an InputError naming the file (and the field or line).
 * What a current run legitimately lacks is null in the rows and "n/a" in the table: the validation loss before
 * training of a run resumed past step 0, a loss or perplexity that was not finite (JSON writes it as null), a
 * perplexity on a text the run was not evaluated on, and the recipe hash when recipe.json is absent. Zero-shot
 * accuracies (eval.tasks: acc and acc_norm before -> after per task) are "-" in the table for a run that did not
 * evaluate that task.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as z from 'zod';
import { InputError, OptionError } from '../errors.js';
import { parseJson } from '../io/json-file.js';
import { TRAIN_METHODS, TRAINABLE_SETS, type TrainableSet } from '../recipe/schema.js';
import type { RunSummary, ZeroShotSummary } from '../train/run-recipe.js';
import { makeDir } from '../io/make-dir.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { PALETTE, lineChartSvg, svgToPng, type ChartSeries, type LegendEntry } from './plot-svg.js';

/** One run's numbers; null where a current run legitimately has none (see the header). */
export interface CompareRow {
  /** Directory basename (the path as given when two runs share a basename). */
  run: string;
  dir: string;
  method: RunSummary['method'];
  /** What a wct run trained (train.trainable; weak_columns for a summary of an earlier version); null for LoRA. */
  trainable: TrainableSet | null;
  /** The table's method cell: the method, or for wct over outliers what it trained (see methodLabel). */
  label: string;
  recipe: string;
  recipeHash: string | null;
  base: string;
  /** Average bits of the base's decoder linears; 32 for full precision. */
  baseBits: number;
  steps: number;
  trainableParams: number;
  optimizerStateBytes: number;
  peakRssMiB: number;
  /** Mean seconds per optimizer step. */
  stepSeconds: number;
  tokensPerSecond: number;
  valLossBefore: number | null;
  valLossAfter: number | null;
  valLossReloaded: number | null;
  /**
   * Perplexity before and after training, keyed by the evaluation text's short name (see evalTexts), and the
   * full-precision model's (null where the summary has none: a packed base given as is, or an older summary).
   */
  ppl: Record<string, { before: number | null; after: number | null; fullPrecision: number | null }>;
  /**
   * Zero-shot figures by task (eval.tasks) on the base before and on the tuned model after training; {} (or absent,
   * in a row built by hand) for none.
   */
  tasks?: Record<string, TaskComparison>;
  artifact: { path: string; bytes: number };
  /** Wall time of the whole run. */
  seconds: number;
}

/** One task's zero-shot figures of a run; null where the summary has none (acc_norm of LAMBADA, a NaN stderr). */
export interface TaskComparison {
  n: number;
  bos: boolean;
  acc: { before: number | null; after: number | null };
  accNorm: { before: number | null; after: number | null };
  accStderr: number | null;
  accNormStderr: number | null;
}

/** A loss value at an optimizer step; null where the logged value was not finite. */
export interface CurvePoint {
  step: number;
  loss: number | null;
}

export interface LossCurves {
  run: string;
  train: CurvePoint[];
  validation: CurvePoint[];
}

export interface Comparison {
  /** Short names of every evaluation text any run reports, in first-seen order. */
  evalTexts: string[];
  /** Zero-shot tasks any run evaluated, in first-seen order (absent: none). */
  tasks?: string[];
  runs: CompareRow[];
  curves: LossCurves[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function readJson(file: string): unknown {
  if (!fs.existsSync(file)) throw new InputError(file, 'not found (expected a wct-train output directory)');
  return parseJson(file, fs.readFileSync(file, 'utf8'));
}

/**
 * A RunSummary as summary.json holds it: JSON.stringify writes a non-finite number as null, which the losses
 * (NaN over an empty validation split) and the perplexities can be.
 */
/** TaskScores as summary.json holds them: a non-finite figure (the stderr over one document) is null. */
/** TaskScores (src/train/run-recipe.ts) as summary.json holds them: a NaN stderr (one document) is null. */
interface StoredScores {
  n: number;
  acc: number | null;
  acc_stderr: number | null;
  acc_norm?: number | null;
  acc_norm_stderr?: number | null;
  perplexity?: number | null;
  empty_continuations?: number | null;
  bos: boolean;
  seconds: number | null;
}

type StoredSummary = Omit<
  RunSummary,
  'train' | 'valLossReloaded' | 'pplBefore' | 'ppl' | 'pplFullPrecision' | 'zeroShot'
> & {
  train: Omit<RunSummary['train'], 'valLossAfter'> & { valLossAfter: number | null };
  valLossReloaded: number | null;
  pplBefore: Record<string, number | null>;
  ppl: Record<string, number | null>;
  pplFullPrecision: Record<string, number | null>;
  zeroShot?: Omit<ZeroShotSummary, 'before' | 'after'> & {
    before: Record<string, StoredScores>;
    after: Record<string, StoredScores>;
  };
};

const nullableNumber = () => z.number().nullable();
/** One task's figures in summary.json (a stderr over one document is NaN, written as null). */
const taskScoresSchema: z.ZodType<StoredScores> = z.object({
  n: z.number(),
  acc: nullableNumber(),
  acc_stderr: nullableNumber(),
  acc_norm: nullableNumber().optional(),
  acc_norm_stderr: nullableNumber().optional(),
  perplexity: nullableNumber().optional(),
  empty_continuations: nullableNumber().optional(),
  bos: z.boolean(),
  seconds: nullableNumber(),
});

/** The schema of summary.json; typed as StoredSummary, so a field added to RunSummary must be added here. */
const summarySchema: z.ZodType<StoredSummary> = z.object({
  method: z.enum(TRAIN_METHODS),
  // absent from the summaries of earlier versions (weak columns) and of lora / qlora runs
  trainable: z.enum(TRAINABLE_SETS).optional(),
  recipe: z.string(),
  base: z.string(),
  baseBits: z.number(),
  artifact: z.object({ path: z.string(), bytes: z.number() }),
  // data.name and pplFullPrecision are absent from the summaries of earlier versions
  data: z.object({
    name: z.string().default(''),
    train: z.number(),
    validation: z.number(),
    truncated: z.number(),
    dropped: z.number(),
  }),
  train: z.object({
    steps: z.number(),
    resumedFrom: z.number(),
    valLossBefore: z.number().nullable(),
    valLossAfter: z.number().nullable(),
    trainableParams: z.number(),
    optimizerStateBytes: z.number(),
    stepSeconds: z.number(),
    tokensPerSecond: z.number(),
  }),
  valLossReloaded: z.number().nullable(),
  pplBefore: z.record(z.string(), z.number().nullable()),
  ppl: z.record(z.string(), z.number().nullable()),
  pplFullPrecision: z.record(z.string(), z.number().nullable()).default({}),
  // absent when the recipe names no eval.tasks, and from the summaries of earlier versions
  zeroShot: z
    .object({
      bos: z.boolean(),
      limit: z.number().nullable(),
      files: z.record(z.string(), z.string()),
      before: z.record(z.string(), taskScoresSchema),
      after: z.record(z.string(), taskScoresSchema),
    })
    .optional(),
  peakRssMiB: z.number(),
  seconds: z.number(),
});

/** recipe.json as wct-train writes it (the recipe itself is not read here). */
const recipeFileSchema = z.object({ file: z.string().nullish(), hash: z.string().nullish() });

/** `value` parsed by `schema`, or an InputError naming `file` and the first field at fault. */
function parseFile<T>(schema: z.ZodType<T>, value: unknown, file: string): T {
  if (!isObject(value)) throw new InputError(file, 'expected a JSON object');
  const r = schema.safeParse(value, { reportInput: true });
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue.path.map(String).join('.');
  if (issue.input === undefined) throw new InputError(file, where, 'missing (not what the current wct-train writes)');
  const got = `got ${JSON.stringify(issue.input)}`;
  if (issue.code === 'invalid_type') throw new InputError(file, where, `expected ${article(issue.expected)}, ${got}`);
  if (issue.code === 'invalid_value') {
    throw new InputError(file, where, `expected one of ${issue.values.join(', ')}, ${got}`);
  }
  throw new InputError(file, where, issue.message);
}

const article = (type: string) => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);

/**
 * metrics.jsonl as two curves: train loss on the lines with `loss`, validation loss on those with
 * `val_loss`. A last line without its newline is a killed run's half-written line and is dropped, as the
 * trainer itself does on resume.
 */
export function readMetrics(file: string): { train: CurvePoint[]; validation: CurvePoint[] } {
  if (!fs.existsSync(file)) throw new InputError(file, 'not found (expected a wct-train output directory)');
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const partial = lines.pop() ?? '';
  const train: CurvePoint[] = [];
  const validation: CurvePoint[] = [];
  const parse = (line: string): Json | null => {
    try {
      const obj: unknown = JSON.parse(line);
      return isObject(obj) && typeof obj.step === 'number' && Number.isSafeInteger(obj.step) ? obj : null;
    } catch {
      return null;
    }
  };
  const value = (obj: Json, key: string, where: string): number | null => {
    const v = obj[key];
    if (v !== null && typeof v !== 'number')
      throw new InputError(file, `${where}: ${key}`, `expected a number or null, got ${JSON.stringify(v)}`);
    return v;
  };
  const entries = lines.map((line, i) => ({ line, i }));
  if (partial.trim() !== '' && parse(partial) !== null) entries.push({ line: partial, i: lines.length });
  for (const { line, i } of entries) {
    if (line.trim() === '') continue;
    const where = `line ${i + 1}`;
    const obj = parse(line);
    if (obj === null) throw new InputError(file, where, 'not a JSON object with an integer "step"');
    const step = obj.step as number;
    if ('loss' in obj) train.push({ step, loss: value(obj, 'loss', where) });
    if ('val_loss' in obj) validation.push({ step, loss: value(obj, 'val_loss', where) });
  }
  return { train, validation };
}

/**
 * A run's method as the table shows it: lora, qlora, wct for the weak columns (WCT), "GWQ-style outliers" for a
 * wct run that trained the sparse outliers' values only, "WCT + outliers" for one that trained both.
 */
export function methodLabel(method: RunSummary['method'], trainable: TrainableSet | null): string {
  if (method !== 'wct' || trainable === null || trainable === 'weak_columns') return method;
  return trainable === 'outliers' ? 'GWQ-style outliers' : 'WCT + outliers';
}

/** A run's zero-shot figures per task: every task of `after` (or of `before` for a task only it has). */
function taskComparisons(z: StoredSummary['zeroShot']): Record<string, TaskComparison> {
  if (z === undefined) return {};
  const names = [...new Set([...Object.keys(z.after), ...Object.keys(z.before)])];
  return Object.fromEntries(
    names.map((name) => {
      const [b, a] = [z.before[name], z.after[name]];
      const either = a ?? b;
      return [
        name,
        {
          n: either.n,
          bos: either.bos,
          acc: { before: b?.acc ?? null, after: a?.acc ?? null },
          accNorm: { before: b?.acc_norm ?? null, after: a?.acc_norm ?? null },
          accStderr: either.acc_stderr,
          accNormStderr: either.acc_norm_stderr ?? null,
        },
      ];
    }),
  );
}

/** Reads one run directory; `name` is its row label. */
function readRun(
  dir: string,
  name: string,
): {
  row: CompareRow;
  curves: LossCurves;
  pplBefore: Record<string, number | null>;
  pplAfter: Record<string, number | null>;
  pplFullPrecision: Record<string, number | null>;
} {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new InputError(dir, 'not a directory');
  const summaryFile = path.join(dir, 'summary.json');
  const s = parseFile(summarySchema, readJson(summaryFile), summaryFile);
  const recipeFile = path.join(dir, 'recipe.json');
  const recipe = parseFile(recipeFileSchema, fs.existsSync(recipeFile) ? readJson(recipeFile) : {}, recipeFile);
  const trainable = s.method === 'wct' ? (s.trainable ?? 'weak_columns') : null;
  const row: CompareRow = {
    run: name,
    dir,
    method: s.method,
    trainable,
    label: methodLabel(s.method, trainable),
    recipe: recipe.file ?? s.recipe,
    recipeHash: recipe.hash ?? null,
    base: s.base,
    baseBits: s.baseBits,
    steps: s.train.steps,
    trainableParams: s.train.trainableParams,
    optimizerStateBytes: s.train.optimizerStateBytes,
    peakRssMiB: s.peakRssMiB,
    stepSeconds: s.train.stepSeconds,
    tokensPerSecond: s.train.tokensPerSecond,
    valLossBefore: s.train.valLossBefore,
    valLossAfter: s.train.valLossAfter,
    valLossReloaded: s.valLossReloaded,
    ppl: {},
    tasks: taskComparisons(s.zeroShot),
    artifact: s.artifact,
    seconds: s.seconds,
  };
  const curves = { run: name, ...readMetrics(path.join(dir, 'metrics.jsonl')) };
  return { row, curves, pplBefore: s.pplBefore, pplAfter: s.ppl, pplFullPrecision: s.pplFullPrecision };
}

/** Basenames of the evaluation texts ('wikitext2', 'valid.txt'); the full key where two keys share one. */
function shortNames(keys: readonly string[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const k of keys) count.set(path.basename(k), (count.get(path.basename(k)) ?? 0) + 1);
  return new Map(keys.map((k) => [k, count.get(path.basename(k)) === 1 ? path.basename(k) : k]));
}

/** Reads the run directories, in the order given. */
export function compareRuns(dirs: readonly string[]): Comparison {
  if (dirs.length === 0) throw new OptionError('compare', 'name at least one run directory');
  const base = dirs.map((d) => path.basename(path.resolve(d)));
  const names = dirs.map((d, i) => (base.filter((b) => b === base[i]).length === 1 ? base[i] : path.normalize(d)));
  const runs = dirs.map((d, i) => readRun(d, names[i]));
  const keys = [...new Set(runs.flatMap((r) => [...Object.keys(r.pplBefore), ...Object.keys(r.pplAfter)]))];
  const short = shortNames(keys);
  for (const r of runs) {
    for (const k of keys) {
      if (!(k in r.pplBefore) && !(k in r.pplAfter)) continue;
      r.row.ppl[short.get(k) as string] = {
        before: r.pplBefore[k] ?? null,
        after: r.pplAfter[k] ?? null,
        fullPrecision: r.pplFullPrecision[k] ?? null,
      };
    }
  }
  return {
    evalTexts: keys.map((k) => short.get(k) as string),
    tasks: [...new Set(runs.flatMap((r) => Object.keys(r.row.tasks ?? {})))],
    runs: runs.map((r) => r.row),
    curves: runs.map((r) => r.curves),
  };
}

// ---- formatting: "n/a" for a missing number ----

const NA = 'n/a';
const fixed = (v: number | null, digits: number) =>
  v === null || !Number.isFinite(v) ? (v === null ? NA : String(v)) : v.toFixed(digits);
const grouped = (v: number) => Math.round(v).toLocaleString('en-US');
/** Three significant digits, no exponent: 0.00412, 0.412, 41.2, 412, 4120. */
function sig3(v: number): string {
  if (v === 0 || Math.abs(v) >= 100) return v.toFixed(0);
  return v.toFixed(Math.max(0, 2 - Math.floor(Math.log10(Math.abs(v)))));
}
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return NA;
  if (bytes < 1 << 20) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1 << 30) return `${(bytes / (1 << 20)).toFixed(2)} MiB`;
  return `${(bytes / (1 << 30)).toFixed(2)} GiB`;
}
export function formatDuration(seconds: number | null): string {
  if (seconds === null) return NA;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const [h, m, r] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}h ${pad(m)}m ${pad(r)}s` : `${m}m ${pad(r)}s`;
}
const bits = (v: number) => String(Number(v.toFixed(3)));
const cell = (s: string) => s.replace(/\|/g, '\\|');

/** A cell of a zero-shot figure a run did not measure. */
const NONE = '-';

/** The zero-shot columns: per task its acc, and its acc_norm where any run has one (LAMBADA has none). */
function taskColumns(c: Comparison): { task: string; metric: 'acc' | 'acc_norm' }[] {
  const hasNorm = (r: CompareRow, task: string) => {
    const t = r.tasks?.[task];
    return t !== undefined && (t.accNorm.after ?? t.accNorm.before) !== null;
  };
  return (c.tasks ?? []).flatMap((task) => [
    { task, metric: 'acc' as const },
    ...(c.runs.some((r) => hasNorm(r, task)) ? [{ task, metric: 'acc_norm' as const }] : []),
  ]);
}

/** The table's header and cells, one array per run, as the markdown shows them. */
export function comparisonTable(c: Comparison): { header: string[]; rows: string[][] } {
  const header = [
    'run',
    'method',
    'base bits',
    'trainable params',
    'optimizer state (KiB)',
    'peak RSS (MiB)',
    'step time (s)',
    'tokens/s',
    'val loss (final)',
    'val loss (before)',
    ...c.evalTexts.flatMap((t) => [`ppl ${t} (before → after)`, `ppl ${t} (full precision)`]),
    ...taskColumns(c).map(({ task, metric }) => `${task} ${metric} (before → after)`),
    'artifact',
    'wall time',
  ];
  const rows = c.runs.map((r) => [
    r.run,
    r.label,
    bits(r.baseBits),
    grouped(r.trainableParams),
    (r.optimizerStateBytes / 1024).toFixed(1),
    fixed(r.peakRssMiB, 0),
    sig3(r.stepSeconds),
    grouped(r.tokensPerSecond),
    fixed(r.valLossAfter, 4),
    fixed(r.valLossBefore, 4),
    ...c.evalTexts.flatMap((t) =>
      r.ppl[t] === undefined
        ? [NA, NA]
        : [`${fixed(r.ppl[t].before, 2)} → ${fixed(r.ppl[t].after, 2)}`, fixed(r.ppl[t].fullPrecision, 2)],
    ),
    ...taskColumns(c).map(({ task, metric }) => {
      const t = r.tasks?.[task];
      if (t === undefined) return NONE;
      const v = metric === 'acc' ? t.acc : t.accNorm;
      return v.before === null && v.after === null ? NONE : `${fixed(v.before, 4)} → ${fixed(v.after, 4)}`;
    }),
    formatBytes(r.artifact.bytes),
    formatDuration(r.seconds),
  ]);
  return { header, rows };
}

/** The table as markdown, numbers right-aligned. */
export function markdownTable(c: Comparison): string {
  const { header, rows } = comparisonTable(c);
  const line = (cells: string[]) => `| ${cells.map(cell).join(' | ')} |`;
  const align = header.map((_, i) => (i < 2 ? ':---' : '---:'));
  return [line(header), `|${align.join('|')}|`, ...rows.map(line)].join('\n');
}

/** compare.md: the table, where each run came from, and the loss chart (loss.png beside it). */
export function comparisonMarkdown(c: Comparison): string {
  const runs = c.runs.map((r) => {
    const hash = r.recipeHash === null ? '' : ` (${r.recipeHash.slice(0, 12)})`;
    const from = `recipe \`${r.recipe}\`${hash}, base \`${r.base}\`, artifact \`${r.artifact.path}\``;
    return `- **${cell(r.run)}**: \`${r.dir}\`, ${from}, ${r.steps} steps`;
  });
  return [
    '# Training runs compared',
    '',
    markdownTable(c),
    '',
    'n/a: validation loss before training of a run resumed past step 0, a loss or perplexity that was not finite, or a',
    'perplexity on a text that run was not evaluated on. -: a zero-shot task that run did not evaluate.',
    'Validation loss "before" is the untrained model\'s, at step 0; perplexity before → after training.',
    '',
    ...runs,
    '',
    '## Loss',
    '',
    '![loss](loss.png)',
    '',
    'Train loss solid, validation loss dashed with markers; vector version: [loss.svg](loss.svg).',
    '',
  ].join('\n');
}

/** The loss chart: per run, its train loss (solid) and validation loss (dashed, markers) in its own color. */
export function lossChartSvg(c: Comparison): string {
  const color = (i: number) => PALETTE[i % PALETTE.length];
  const pts = (curve: CurvePoint[]) => curve.map((p) => [p.step, p.loss] as const);
  const series: ChartSeries[] = c.curves.flatMap((cv, i) => [
    { label: `${cv.run} train`, color: color(i), points: pts(cv.train) },
    { label: `${cv.run} validation`, color: color(i), points: pts(cv.validation), dashed: true, markers: true },
  ]);
  const legend: LegendEntry[] = [
    ...c.curves.map((cv, i) => ({ label: cv.run, color: color(i) })),
    { label: 'train loss', color: '#555555', gapBefore: true },
    { label: 'validation loss', color: '#555555', dashed: true, markers: true },
  ];
  return lineChartSvg({
    title: 'Training and validation loss',
    xLabel: 'optimizer step',
    yLabel: 'loss (nats/token)',
    series,
    legend,
  });
}

/** Writes compare.md, compare.json, loss.svg and loss.png into `outDir` (each atomically); returns their paths. */
export function writeComparison(c: Comparison, outDir: string): string[] {
  makeDir(outDir);
  const svg = lossChartSvg(c);
  const files: [string, string | Buffer][] = [
    ['compare.json', `${JSON.stringify(c, null, 2)}\n`],
    ['loss.svg', svg],
    ['loss.png', svgToPng(svg, 900)],
    ['compare.md', comparisonMarkdown(c)],
  ];
  return files.map(([name, data]) => {
    const file = path.join(outDir, name);
    writeFileAtomic(file, (fd) => fs.writeFileSync(fd, data));
    return file;
  });
}
