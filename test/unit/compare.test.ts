/**
 * `wct compare`: rows read from fake wct-train run directories (one resumed past step 0, so without a
 * validation loss before training), the table's cells, the SVG's series (one solid and one dashed path per run),
 * the PNG (signature, IHDR size, not blank, text actually rendered), and one-line errors on bad input, a
 * summary.json that is not the current RunSummary (an older trainer's) among them; zero-shot tasks (acc and
 * acc_norm before -> after per task, '-' for a run without them, a null stderr, a bad task field).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { afterAll, describe, expect, it } from 'vitest';
import {
  compareRuns,
  comparisonMarkdown,
  comparisonTable,
  formatBytes,
  formatDuration,
  lossChartSvg,
  readMetrics,
  writeComparison,
} from '../../src/report/compare.js';
import { niceTicks, svgToPng } from '../../src/report/plot-svg.js';
import { InputError } from '../../src/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-compare-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const STEPS = 40;
const VAL_EVERY = 10;

/** metrics.jsonl as RunLog writes it: a step-0 validation line, then one line per step, validation every 10. */
function metricsLines(start: number, end: number): string {
  const lines = [JSON.stringify({ step: 0, val_loss: start + 0.1 })];
  for (let step = 1; step <= STEPS; step++) {
    const loss = start + (end - start) * (step / STEPS) + 0.05 * Math.sin(step);
    const line: Record<string, number> = { step, loss, lr: 1e-4, grad_norm: 0.8, tokens_per_s: 5400, rss_mib: 812 };
    if (step % VAL_EVERY === 0) line.val_loss = loss + 0.1;
    lines.push(JSON.stringify(line));
  }
  return `${lines.join('\n')}\n`;
}

function writeRun(name: string, summary: object, metrics: string, extra: Record<string, string | Buffer> = {}): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify(summary, null, 2));
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), metrics);
  fs.writeFileSync(
    path.join(dir, 'recipe.json'),
    JSON.stringify({ file: `recipes/${name}.yaml`, hash: `${name}0123456789abcdef`, recipe: { model: { path: 'm' } } }),
  );
  for (const [f, data] of Object.entries(extra)) fs.writeFileSync(path.join(dir, f), data);
  return dir;
}

const data = { train: 900, validation: 100, truncated: 2, dropped: 0 };
const wctSummary = () => ({
  method: 'wct',
  recipe: 'recipes/wct-3bit.yaml',
  base: 'out/wct-3bit/base',
  baseBits: 3.0125,
  artifact: { path: 'out/wct-3bit/weak_deltas.safetensors', bytes: 1_572_864 },
  data,
  train: {
    steps: STEPS,
    resumedFrom: 0,
    valLossBefore: 2.6,
    valLossAfter: 2.1,
    trainableParams: 393_216,
    optimizerStateBytes: 3_145_728,
    stepSeconds: 0.4123,
    tokensPerSecond: 5432.6,
  },
  valLossReloaded: 2.1001,
  pplBefore: { wikitext2: 45.1, '../shared/data/text/valid.txt': 30.25 },
  ppl: { wikitext2: 40.5, '../shared/data/text/valid.txt': 22.125 },
  pplFullPrecision: { wikitext2: 37.25 }, // the other runs' summaries predate the field
  peakRssMiB: 1234.5,
  seconds: 3725,
});
const wct = writeRun('wct-3bit', wctSummary(), metricsLines(2.5, 2.0));
const lora = writeRun(
  'lora-fp32',
  {
    method: 'lora',
    recipe: 'recipes/lora-fp32.yaml',
    base: 'models/tiny',
    baseBits: 32,
    artifact: { path: 'out/lora-fp32/adapter', bytes: 524_288 },
    data,
    train: {
      steps: STEPS,
      resumedFrom: 0,
      valLossBefore: 2.4,
      valLossAfter: 1.9,
      trainableParams: 1_048_576,
      optimizerStateBytes: 8_388_608,
      stepSeconds: 1.5,
      tokensPerSecond: 1500,
    },
    valLossReloaded: 1.9,
    pplBefore: { wikitext2: 35 },
    ppl: { wikitext2: 33.333 },
    peakRssMiB: 2048,
    seconds: 59.94,
  },
  metricsLines(2.3, 1.8),
);
// resumed past step 0: no validation loss before training (the base's perplexity is measured on every start)
const resumed = writeRun(
  'resumed-run',
  {
    method: 'qlora',
    recipe: 'recipes/resumed.yaml',
    base: 'out/resumed/base',
    baseBits: 4.25,
    artifact: { path: 'out/resumed/adapter', bytes: 3000 },
    data,
    train: {
      steps: STEPS,
      resumedFrom: 20,
      valLossBefore: null,
      valLossAfter: 2.3,
      trainableParams: 393_216,
      optimizerStateBytes: 3_145_728,
      stepSeconds: 0.05,
      tokensPerSecond: 20_000,
    },
    valLossReloaded: 2.3,
    pplBefore: { wikitext2: 60.25 },
    ppl: { wikitext2: 50.5 },
    peakRssMiB: 900,
    seconds: 125,
  },
  metricsLines(2.7, 2.2),
);

const comparison = compareRuns([wct, lora, resumed]);
const svg = lossChartSvg(comparison);
const out = path.join(tmp, 'report');
const written = writeComparison(comparison, out);
const RENDER = {
  fitTo: { mode: 'width' as const, value: 900 },
  background: '#ffffff',
  font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
};

describe('compareRuns', () => {
  it('reads one row per run, null where a current run has no value (validation loss before, once resumed)', () => {
    const [a, b, c] = comparison.runs;
    expect(comparison.runs.map((r) => r.run)).toEqual(['wct-3bit', 'lora-fp32', 'resumed-run']);
    expect(comparison.evalTexts).toEqual(['wikitext2', 'valid.txt']);
    expect(a).toMatchObject({
      method: 'wct',
      baseBits: 3.0125,
      trainableParams: 393_216,
      stepSeconds: 0.4123,
      recipeHash: 'wct-3bit0123456789abcdef',
      recipe: 'recipes/wct-3bit.yaml',
    });
    expect(a.ppl).toEqual({
      wikitext2: { before: 45.1, after: 40.5, fullPrecision: 37.25 },
      'valid.txt': { before: 30.25, after: 22.125, fullPrecision: null },
    });
    expect(b.ppl).toEqual({ wikitext2: { before: 35, after: 33.333, fullPrecision: null } });
    expect(c).toMatchObject({
      method: 'qlora',
      baseBits: 4.25,
      stepSeconds: 0.05,
      tokensPerSecond: 20_000,
      valLossBefore: null,
      valLossAfter: 2.3,
    });
    expect(c.ppl).toEqual({ wikitext2: { before: 60.25, after: 50.5, fullPrecision: null } });
    expect(c.artifact).toEqual({ path: 'out/resumed/adapter', bytes: 3000 });
  });

  it('reads a loss or perplexity that was not finite (null in summary.json) as null, shown n/a', () => {
    const current = wctSummary();
    const dir = writeRun(
      'no-validation',
      {
        ...current,
        train: { ...current.train, valLossBefore: null, valLossAfter: null },
        valLossReloaded: null,
        ppl: { wikitext2: null },
      },
      metricsLines(2, 1),
    );
    const c = compareRuns([dir]);
    expect(c.runs[0]).toMatchObject({ valLossBefore: null, valLossAfter: null, valLossReloaded: null });
    expect(c.runs[0].ppl.wikitext2).toEqual({ before: 45.1, after: null, fullPrecision: 37.25 });
    const { header, rows } = comparisonTable(c);
    expect(rows[0][header.indexOf('val loss (final)')]).toBe('n/a');
    expect(rows[0][header.indexOf('ppl wikitext2 (before → after)')]).toBe('45.10 → n/a');
  });

  it('reads the curves: train loss per step, validation from step 0', () => {
    for (const cv of comparison.curves) {
      expect(cv.train.map((p) => p.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
      expect(cv.validation.map((p) => p.step)).toEqual([0, 10, 20, 30, 40]);
    }
    expect(comparison.curves[0].validation[0].loss).toBeCloseTo(2.6);
  });

  it('formats the table cells', () => {
    const { header, rows } = comparisonTable(comparison);
    const col = (name: string) => rows.map((r) => r[header.indexOf(name)]);
    expect(header).toContain('ppl valid.txt (before → after)');
    expect(col('method')).toEqual(['wct', 'lora', 'qlora']);
    expect(col('base bits')).toEqual(['3.013', '32', '4.25']);
    expect(col('trainable params')).toEqual(['393,216', '1,048,576', '393,216']);
    expect(col('optimizer state (KiB)')).toEqual(['3072.0', '8192.0', '3072.0']);
    expect(col('peak RSS (MiB)')).toEqual(['1235', '2048', '900']);
    expect(col('step time (s)')).toEqual(['0.412', '1.50', '0.0500']);
    expect(col('tokens/s')).toEqual(['5,433', '1,500', '20,000']);
    expect(col('val loss (final)')).toEqual(['2.1000', '1.9000', '2.3000']);
    expect(col('val loss (before)')).toEqual(['2.6000', '2.4000', 'n/a']);
    expect(col('ppl wikitext2 (before → after)')).toEqual(['45.10 → 40.50', '35.00 → 33.33', '60.25 → 50.50']);
    expect(col('ppl valid.txt (before → after)')).toEqual(['30.25 → 22.13', 'n/a', 'n/a']);
    expect(col('ppl wikitext2 (full precision)')).toEqual(['37.25', 'n/a', 'n/a']);
    expect(col('ppl valid.txt (full precision)')).toEqual(['n/a', 'n/a', 'n/a']);
    expect(col('artifact')).toEqual(['1.50 MiB', '512.0 KiB', '2.9 KiB']);
    expect(col('wall time')).toEqual(['1h 02m 05s', '59.9 s', '2m 05s']);
    expect(formatBytes(5 * 2 ** 30)).toBe('5.00 GiB');
    expect(formatDuration(null)).toBe('n/a');
  });

  it('writes compare.md with the table and the embedded PNG', () => {
    const md = fs.readFileSync(path.join(out, 'compare.md'), 'utf8');
    expect(md).toBe(comparisonMarkdown(comparison));
    expect(md).toContain('![loss](loss.png)');
    expect(md.split('\n').filter((l) => l.startsWith('| '))).toHaveLength(1 + 3); // header + one row per run
    expect(md).toContain('| wct-3bit | wct | 3.013 |');
  });

  it('writes compare.json with the rows and curves, and leaves no temp files', () => {
    expect(written.map((f) => path.basename(f)).sort()).toEqual(['compare.json', 'compare.md', 'loss.png', 'loss.svg']);
    expect(fs.readdirSync(out).sort()).toEqual(['compare.json', 'compare.md', 'loss.png', 'loss.svg']);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'compare.json'), 'utf8'))).toEqual(comparison);
  });
});

describe('loss chart', () => {
  const paths = [...svg.matchAll(/<path class="series"[^>]*>/g)].map((m) => m[0]);
  const dashed = paths.filter((p) => p.includes('stroke-dasharray'));
  const solid = paths.filter((p) => !p.includes('stroke-dasharray'));

  it('has one solid train path and one dashed validation path per run, in the run color', () => {
    expect(solid).toHaveLength(3);
    expect(dashed).toHaveLength(3);
    comparison.runs.forEach((r, i) => {
      expect(solid[i]).toContain(`data-label="${r.run} train"`);
      expect(dashed[i]).toContain(`data-label="${r.run} validation"`);
      expect(solid[i].match(/stroke="(#[0-9a-f]{6})"/)?.[1]).toBe(dashed[i].match(/stroke="(#[0-9a-f]{6})"/)?.[1]);
    });
    expect(new Set(solid.map((p) => p.match(/stroke="(#[0-9a-f]{6})"/)?.[1])).size).toBe(3);
    // one subpath per curve, with every point: M then STEPS-1 L (train), 5 validation points
    expect(solid[0].match(/[ML]/g)).toHaveLength(STEPS);
    expect(dashed[0].match(/[ML]/g)).toHaveLength(5);
    expect(svg.match(/<circle class="marker"/g)).toHaveLength(3 * 5);
  });

  it('has a title, axis labels, tick labels and a legend naming every run', () => {
    for (const s of [
      'Training and validation loss',
      'optimizer step',
      'loss (nats/token)',
      '>wct-3bit<',
      '>lora-fp32<',
      '>resumed-run<',
      '>validation loss<',
      '>40<',
    ]) {
      expect(svg).toContain(s);
    }
  });

  it('breaks a line at a non-finite (null) loss', () => {
    const broken = lossChartSvg({
      evalTexts: [],
      runs: [],
      curves: [
        {
          run: 'r',
          train: [
            { step: 1, loss: 2 },
            { step: 2, loss: null },
            { step: 3, loss: 1.5 },
            { step: 4, loss: 1.4 },
          ],
          validation: [],
        },
      ],
    });
    const d = broken.match(/<path class="series"[^>]* d="([^"]*)"/)?.[1] ?? '';
    expect(d.match(/M/g)).toHaveLength(2);
  });

  it('picks ticks at 1, 2 or 5 times a power of ten covering the range', () => {
    expect(niceTicks(0, 40, 8)).toEqual([0, 5, 10, 15, 20, 25, 30, 35, 40]);
    expect(niceTicks(1.83, 2.72, 6)).toEqual([1.8, 2, 2.2, 2.4, 2.6, 2.8]);
    expect(niceTicks(3, 3, 5)[0]).toBeLessThan(3);
  });

  it('renders loss.png: PNG signature, 900 px wide, IHDR matching the SVG proportions', () => {
    const png = fs.readFileSync(path.join(out, 'loss.png'));
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(png.subarray(12, 16).toString('ascii')).toBe('IHDR');
    expect(png.readUInt32BE(16)).toBe(900);
    expect(png.readUInt32BE(20)).toBe(520);
    expect(png.length).toBeGreaterThan(20_000);
  });

  it('draws the curves: the render differs from the same chart without its series', () => {
    const bare = svg.replace(/<path class="series"[^>]*\/>\n/g, '').replace(/<circle class="marker"[^>]*\/>\n/g, '');
    expect(bare).not.toContain('class="series"');
    const full = new Resvg(svg, RENDER).render().pixels;
    const none = new Resvg(bare, RENDER).render().pixels;
    let differ = 0;
    for (let i = 0; i < full.length; i += 4)
      if (full[i] !== none[i] || full[i + 1] !== none[i + 1] || full[i + 2] !== none[i + 2]) differ++;
    expect(differ).toBeGreaterThan(3000); // six 2-px curves across a ~620-px plot, plus 15 markers
  });

  it('renders text with the system font (not silently dropped)', () => {
    const text =
      '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="10" y="28" font-family="DejaVu Sans" font-size="20">loss</text></svg>';
    const px = new Resvg(text, RENDER).render().pixels;
    let dark = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i] < 128) dark++;
    expect(dark).toBeGreaterThan(50);
    expect(svgToPng(text, 400).readUInt32BE(16)).toBe(400);
  });
});

describe('zero-shot tasks', () => {
  const scores = (acc: number, accNorm: number | null, n = 20) => ({
    n,
    acc,
    acc_stderr: Math.sqrt((acc * (1 - acc)) / (n - 1)),
    ...(accNorm === null
      ? { perplexity: 25.5, empty_continuations: 0 }
      : { acc_norm: accNorm, acc_norm_stderr: Math.sqrt((accNorm * (1 - accNorm)) / (n - 1)) }),
    bos: false,
    seconds: 0.25,
  });
  const zeroShot = {
    bos: false,
    limit: 20,
    files: { piqa: 'tasks/piqa/valid.jsonl', lambada: 'l.jsonl' },
    before: { piqa: scores(0.55, 0.5), lambada: scores(0.1, null) },
    after: { piqa: scores(0.6, 0.45), lambada: scores(0.15, null) },
  };
  // metrics.jsonl as logZeroShot leaves it: the task lines after the steps, ignored by the curves
  const metrics = `${metricsLines(2.5, 2.0)}${JSON.stringify({ step: 0, zeroshot: 'base', tasks: {} })}\n${JSON.stringify({ step: STEPS, zeroshot: 'tuned', tasks: {} })}\n`;
  const tasksRun = writeRun('wct-tasks', { ...wctSummary(), zeroShot }, metrics);

  it('reads acc and acc_norm before and after per task; a run without tasks has none', () => {
    const c = compareRuns([tasksRun, wct]);
    expect(c.tasks).toEqual(['piqa', 'lambada']);
    expect(c.runs[0].tasks?.piqa).toEqual({
      n: 20,
      bos: false,
      acc: { before: 0.55, after: 0.6 },
      accNorm: { before: 0.5, after: 0.45 },
      accStderr: Math.sqrt((0.6 * 0.4) / 19),
      accNormStderr: Math.sqrt((0.45 * 0.55) / 19),
    });
    expect(c.runs[0].tasks?.lambada.accNorm).toEqual({ before: null, after: null });
    expect(c.runs[1].tasks).toEqual({});
    expect(c.curves[0].train).toHaveLength(STEPS);
    expect(c.curves[0].validation.map((p) => p.step)).toEqual([0, 10, 20, 30, 40]);
  });

  it("shows them beside the losses and perplexities, '-' for a run without them; LAMBADA has no acc_norm", () => {
    const c = compareRuns([tasksRun, wct]);
    const { header, rows } = comparisonTable(c);
    const taskHeaders = header.filter((h) => /^(piqa|lambada) /.test(h));
    expect(taskHeaders).toEqual([
      'piqa acc (before → after)',
      'piqa acc_norm (before → after)',
      'lambada acc (before → after)',
    ]);
    expect(header.indexOf('piqa acc (before → after)')).toBeGreaterThan(
      header.indexOf('ppl valid.txt (full precision)'),
    );
    expect(header.indexOf('lambada acc (before → after)')).toBeLessThan(header.indexOf('artifact'));
    const col = (name: string) => rows.map((r) => r[header.indexOf(name)]);
    expect(col('piqa acc (before → after)')).toEqual(['0.5500 → 0.6000', '-']);
    expect(col('piqa acc_norm (before → after)')).toEqual(['0.5000 → 0.4500', '-']);
    expect(col('lambada acc (before → after)')).toEqual(['0.1000 → 0.1500', '-']);
    expect(comparisonMarkdown(c)).toContain('-: a zero-shot task that run did not evaluate.');
    // runs without any tasks: no task columns at all
    expect(comparisonTable(comparison).header.some((h) => h.includes(' acc '))).toBe(false);
  });

  it('a stderr over one document (NaN, written as null) is read; a bad task field names it', () => {
    const one = { ...scores(1, 1, 1), acc_stderr: null, acc_norm_stderr: null };
    const dir = writeRun('one-doc', { ...wctSummary(), zeroShot: { ...zeroShot, after: { piqa: one } } }, metrics);
    const c = compareRuns([dir]);
    expect(c.runs[0].tasks?.piqa.accStderr).toBeNull();
    expect(c.runs[0].tasks?.lambada.acc).toEqual({ before: 0.1, after: null });
    expect(comparisonTable(c).rows[0]).toContain('0.1000 → n/a');
    const bad = writeRun(
      'bad-tasks',
      { ...wctSummary(), zeroShot: { ...zeroShot, after: { piqa: { ...one, acc: 'high' } } } },
      metrics,
    );
    expect(() => compareRuns([bad])).toThrow(
      `${path.join(bad, 'summary.json')}: zeroShot.after.piqa.acc: expected a number, got "high"`,
    );
  });
});

describe('bad input', () => {
  it('a directory without summary.json: InputError naming the file', () => {
    const dir = path.join(tmp, 'empty');
    fs.mkdirSync(dir);
    expect(() => compareRuns([wct, dir])).toThrow(InputError);
    expect(() => compareRuns([dir])).toThrow(`${path.join(dir, 'summary.json')}: not found`);
    expect(() => compareRuns([path.join(tmp, 'nope')])).toThrow('nope: not a directory');
  });

  it('an unparsable summary.json or a field of the wrong type: InputError naming file and field', () => {
    const bad = writeRun('bad-summary', {}, metricsLines(2, 1));
    fs.writeFileSync(path.join(bad, 'summary.json'), '{"method": "wct",');
    expect(() => compareRuns([bad])).toThrow(
      `${path.join(bad, 'summary.json')}: file: not valid JSON (expected double-quoted property name at line 1, column 18)`,
    );
    fs.writeFileSync(path.join(bad, 'summary.json'), 'secret token in a file');
    expect(() => compareRuns([bad])).toThrow(
      `${path.join(bad, 'summary.json')}: file: not valid JSON (unexpected character)`,
    );
    const slow = wctSummary();
    const wrongType = { ...slow, train: { ...slow.train, stepSeconds: 'fast' } };
    fs.writeFileSync(path.join(bad, 'summary.json'), JSON.stringify(wrongType));
    expect(() => compareRuns([bad])).toThrow(
      `${path.join(bad, 'summary.json')}: train.stepSeconds: expected a number, got "fast"`,
    );
  });

  it("an older trainer's summary.json (no method, baseBits, artifact, ...): InputError naming the field", () => {
    // as the trainer wrote it before summaries carried the method, base bits, artifact and step times
    const old = writeRun(
      'old-run',
      {
        recipe: 'recipes/old.yaml',
        base: 'out/old/base',
        deltas: 'out/old/weak_deltas.safetensors',
        data,
        train: {
          steps: STEPS,
          resumedFrom: 20,
          valLossBefore: null,
          valLossAfter: 2.3,
          trainableParams: 393_216,
          optimizerStateBytes: 3_145_728,
        },
        valLossReloaded: 2.3,
        ppl: { wikitext2: 50.5 },
        peakRssMiB: 900,
        seconds: 125,
      },
      metricsLines(2.7, 2.2),
    );
    const file = path.join(old, 'summary.json');
    expect(() => compareRuns([wct, old])).toThrow(InputError);
    expect(() => compareRuns([old])).toThrow(`${file}: method: missing (not what the current wct-train writes)`);
    const compareWith = (summary: object) => {
      fs.writeFileSync(file, JSON.stringify(summary));
      return () => compareRuns([old]);
    };
    /** A current summary with `key` of its top level, or of its train section, deleted. */
    const without = (key: string, section?: 'train') => {
      const summary = wctSummary();
      const obj: Record<string, unknown> = section === undefined ? summary : summary.train;
      delete obj[key];
      return compareWith(summary);
    };
    expect(without('artifact')).toThrow(`${file}: artifact: missing`);
    expect(without('pplBefore')).toThrow(`${file}: pplBefore: missing`);
    expect(without('stepSeconds', 'train')).toThrow(`${file}: train.stepSeconds: missing`);
    const fullMethod = { ...wctSummary(), method: 'full' };
    expect(compareWith(fullMethod)).toThrow(`${file}: method: expected one of wct, lora, qlora, got "full"`);
    expect(compareWith(wctSummary())).not.toThrow();
  });

  it('an unparsable metrics line: InputError naming file and line', () => {
    const lines = metricsLines(2, 1).split('\n');
    lines.splice(2, 0, '{"step": 3, "loss": 2.');
    const dir = writeRun('bad-metrics', wctSummary(), lines.join('\n'));
    const file = path.join(dir, 'metrics.jsonl');
    expect(() => compareRuns([dir])).toThrow(InputError);
    expect(() => readMetrics(file)).toThrow(`${file}: line 3: not a JSON object with an integer "step"`);
    fs.writeFileSync(file, '{"step":0,"val_loss":2}\n{"step":1,"loss":"high"}\n');
    expect(() => readMetrics(file)).toThrow(`${file}: line 2: loss: expected a number or null, got "high"`);
  });

  it("drops a killed run's half-written last line", () => {
    const file = path.join(tmp, 'partial.jsonl');
    fs.writeFileSync(file, '{"step":0,"val_loss":2}\n{"step":1,"loss":1.9}\n{"step":2,"lo');
    expect(readMetrics(file)).toEqual({ train: [{ step: 1, loss: 1.9 }], validation: [{ step: 0, loss: 2 }] });
  });
});
