/**
 * `wct compare`: training runs side by side. Reads each run directory written by `wct-train`
 * (summary.json, metrics.jsonl, recipe.json) into one row and one pair of loss curves, and writes
 * `compare.md` (table + embedded chart), `compare.json` (rows + curves), `loss.svg` and `loss.png`.
 *
 * Summaries from older trainers lack some fields (method, baseBits, artifact, pplBefore, stepSeconds,
 * tokensPerSecond): those are null in the rows and "n/a" in the table. A field that is present with the
 * wrong type, a missing or unparsable summary.json or metrics.jsonl, or a bad metrics line is an
 * InputError naming the file (and the line).
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../io/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { PALETTE, lineChartSvg, svgToPng, type ChartSeries, type LegendEntry } from './plot-svg.js';

/** One run's numbers; null where the run's summary does not say. */
export interface CompareRow {
  /** Directory basename (the path as given when two runs share a basename). */
  run: string;
  dir: string;
  method: string | null;
  recipe: string | null;
  recipeHash: string | null;
  base: string | null;
  /** Average bits of the base's decoder linears; 32 for full precision. */
  baseBits: number | null;
  steps: number | null;
  trainableParams: number | null;
  optimizerStateBytes: number | null;
  peakRssMiB: number | null;
  /** Mean seconds per optimizer step. */
  stepSeconds: number | null;
  tokensPerSecond: number | null;
  valLossBefore: number | null;
  valLossAfter: number | null;
  valLossReloaded: number | null;
  /** Perplexity before and after training, keyed by the evaluation text's short name (see evalTexts). */
  ppl: Record<string, { before: number | null; after: number | null }>;
  artifact: { path: string; bytes: number | null } | null;
  /** Wall time of the whole run. */
  seconds: number | null;
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
  runs: CompareRow[];
  curves: LossCurves[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function readJson(file: string): unknown {
  if (!fs.existsSync(file)) throw new InputError(file, 'not found (expected a wct-train output directory)');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError(file, 'not valid JSON', (e as Error).message);
  }
}

/** The value at a dotted key, or undefined when any part is missing or null. */
function at(obj: Json, file: string, key: string): unknown {
  let v: unknown = obj;
  for (const part of key.split('.')) {
    if (v === undefined || v === null) return undefined;
    if (!isObject(v)) throw new InputError(file, key, 'expected an object on the way');
    v = v[part];
  }
  return v === null ? undefined : v;
}

function num(obj: Json, file: string, key: string): number | null {
  const v = at(obj, file, key);
  if (v === undefined) return null;
  if (typeof v !== 'number') throw new InputError(file, key, `expected a number, got ${JSON.stringify(v)}`);
  return v;
}

function str(obj: Json, file: string, key: string): string | null {
  const v = at(obj, file, key);
  if (v === undefined) return null;
  if (typeof v !== 'string') throw new InputError(file, key, `expected a string, got ${JSON.stringify(v)}`);
  return v;
}

/** A {text: perplexity} map; JSON writes a non-finite perplexity as null. */
function pplMap(obj: Json, file: string, key: string): Record<string, number | null> {
  const v = at(obj, file, key);
  if (v === undefined) return {};
  if (!isObject(v)) throw new InputError(file, key, 'expected an object of perplexities');
  const out: Record<string, number | null> = {};
  for (const [k, p] of Object.entries(v)) {
    if (p !== null && typeof p !== 'number') throw new InputError(file, `${key}.${k}`, `expected a number, got ${JSON.stringify(p)}`);
    out[k] = p;
  }
  return out;
}

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
    if (v !== null && typeof v !== 'number') throw new InputError(file, `${where}: ${key}`, `expected a number or null, got ${JSON.stringify(v)}`);
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

/** Reads one run directory; `name` is its row label. */
function readRun(dir: string, name: string): { row: CompareRow; curves: LossCurves; pplBefore: Record<string, number | null>; pplAfter: Record<string, number | null> } {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new InputError(dir, 'not a directory');
  const summaryFile = path.join(dir, 'summary.json');
  const s = readJson(summaryFile);
  if (!isObject(s)) throw new InputError(summaryFile, 'expected a JSON object');
  const recipeFile = path.join(dir, 'recipe.json');
  const recipe = fs.existsSync(recipeFile) ? readJson(recipeFile) : {};
  if (!isObject(recipe)) throw new InputError(recipeFile, 'expected a JSON object');
  const f = summaryFile;
  const row: CompareRow = {
    run: name,
    dir,
    method: str(s, f, 'method'),
    recipe: str(recipe, recipeFile, 'file') ?? str(s, f, 'recipe'),
    recipeHash: str(recipe, recipeFile, 'hash'),
    base: str(s, f, 'base'),
    baseBits: num(s, f, 'baseBits'),
    steps: num(s, f, 'train.steps'),
    trainableParams: num(s, f, 'train.trainableParams'),
    optimizerStateBytes: num(s, f, 'train.optimizerStateBytes'),
    peakRssMiB: num(s, f, 'peakRssMiB'),
    stepSeconds: num(s, f, 'train.stepSeconds'),
    tokensPerSecond: num(s, f, 'train.tokensPerSecond'),
    valLossBefore: num(s, f, 'train.valLossBefore'),
    valLossAfter: num(s, f, 'train.valLossAfter'),
    valLossReloaded: num(s, f, 'valLossReloaded'),
    ppl: {},
    artifact: artifactOf(s, f, dir),
    seconds: num(s, f, 'seconds'),
  };
  const curves = { run: name, ...readMetrics(path.join(dir, 'metrics.jsonl')) };
  return { row, curves, pplBefore: pplMap(s, f, 'pplBefore'), pplAfter: pplMap(s, f, 'ppl') };
}

/** summary.artifact, or for older summaries the `deltas` file, sized from its copy in the run directory. */
function artifactOf(s: Json, file: string, dir: string): CompareRow['artifact'] {
  const p = str(s, file, 'artifact.path');
  if (p !== null) return { path: p, bytes: num(s, file, 'artifact.bytes') };
  const deltas = str(s, file, 'deltas');
  if (deltas === null) return null;
  const local = path.join(dir, path.basename(deltas));
  return { path: deltas, bytes: fs.existsSync(local) && fs.statSync(local).isFile() ? fs.statSync(local).size : null };
}

/** Basenames of the evaluation texts ('wikitext2', 'valid.txt'); the full key where two keys share one. */
function shortNames(keys: readonly string[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const k of keys) count.set(path.basename(k), (count.get(path.basename(k)) ?? 0) + 1);
  return new Map(keys.map((k) => [k, count.get(path.basename(k)) === 1 ? path.basename(k) : k]));
}

/** Reads the run directories, in the order given. */
export function compareRuns(dirs: readonly string[]): Comparison {
  if (dirs.length === 0) throw new RangeError('compare: name at least one run directory');
  const base = dirs.map((d) => path.basename(path.resolve(d)));
  const names = dirs.map((d, i) => (base.filter((b) => b === base[i]).length === 1 ? base[i] : path.normalize(d)));
  const runs = dirs.map((d, i) => readRun(d, names[i]));
  const keys = [...new Set(runs.flatMap((r) => [...Object.keys(r.pplBefore), ...Object.keys(r.pplAfter)]))];
  const short = shortNames(keys);
  for (const r of runs) {
    for (const k of keys) {
      if (!(k in r.pplBefore) && !(k in r.pplAfter)) continue;
      r.row.ppl[short.get(k) as string] = { before: r.pplBefore[k] ?? null, after: r.pplAfter[k] ?? null };
    }
  }
  return { evalTexts: keys.map((k) => short.get(k) as string), runs: runs.map((r) => r.row), curves: runs.map((r) => r.curves) };
}

// ---- formatting: "n/a" for a missing number ----

const NA = 'n/a';
const fixed = (v: number | null, digits: number) => (v === null || !Number.isFinite(v) ? (v === null ? NA : String(v)) : v.toFixed(digits));
const grouped = (v: number | null) => (v === null ? NA : Math.round(v).toLocaleString('en-US'));
/** Three significant digits, no exponent: 0.00412, 0.412, 41.2, 412, 4120. */
function sig3(v: number | null): string {
  if (v === null) return NA;
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
const bits = (v: number | null) => (v === null ? NA : String(Number(v.toFixed(3))));
const cell = (s: string) => s.replace(/\|/g, '\\|');

/** The table's header and cells, one array per run, as the markdown shows them. */
export function comparisonTable(c: Comparison): { header: string[]; rows: string[][] } {
  const header = [
    'run', 'method', 'base bits', 'trainable params', 'optimizer state (KiB)', 'peak RSS (MiB)', 'step time (s)', 'tokens/s',
    'val loss (final)', 'val loss (before)', ...c.evalTexts.map((t) => `ppl ${t} (before → after)`), 'artifact', 'wall time',
  ];
  const rows = c.runs.map((r) => [
    r.run,
    r.method ?? NA,
    bits(r.baseBits),
    grouped(r.trainableParams),
    r.optimizerStateBytes === null ? NA : (r.optimizerStateBytes / 1024).toFixed(1),
    fixed(r.peakRssMiB, 0),
    sig3(r.stepSeconds),
    grouped(r.tokensPerSecond),
    fixed(r.valLossAfter, 4),
    fixed(r.valLossBefore, 4),
    ...c.evalTexts.map((t) => (r.ppl[t] === undefined ? NA : `${fixed(r.ppl[t].before, 2)} → ${fixed(r.ppl[t].after, 2)}`)),
    formatBytes(r.artifact?.bytes ?? null),
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
    const recipe = r.recipe === null ? '' : `, recipe \`${r.recipe}\`${r.recipeHash === null ? '' : ` (${r.recipeHash.slice(0, 12)})`}`;
    const base = r.base === null ? '' : `, base \`${r.base}\``;
    const artifact = r.artifact === null ? '' : `, artifact \`${r.artifact.path}\``;
    return `- **${cell(r.run)}**: \`${r.dir}\`${recipe}${base}${artifact}${r.steps === null ? '' : `, ${r.steps} steps`}`;
  });
  return [
    '# Training runs compared',
    '',
    markdownTable(c),
    '',
    'n/a: not in that run\'s summary.json (written by an older trainer, or, for validation loss before, a run resumed past step 0).',
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
  return lineChartSvg({ title: 'Training and validation loss', xLabel: 'optimizer step', yLabel: 'loss (nats/token)', series, legend });
}

/** Writes compare.md, compare.json, loss.svg and loss.png into `outDir` (each atomically); returns their paths. */
export function writeComparison(c: Comparison, outDir: string): string[] {
  fs.mkdirSync(outDir, { recursive: true });
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
