/**
 * The GWQ-style reference table of TinyStories-656K (../shared/data/golden/gwq-tinystories-656k.md), every row and
 * both perplexity columns, against ours, and OWQ with the Fisher sensitivity beside plain OWQ at 3.1 and 4.1 bits
 * (the reference has the 3.1-bit rows). Each row is quantized with the reference's calibration windows and evaluated
 * in memory. Writes bench/results/gwq-table.{json,md}. `npm run build && node dist/bench/gwq-table.js` (~12 minutes:
 * WikiText-2 is 1,094 chunks per row).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evaluateData } from '../src/eval/evaluate-data.js';
import { sharedDataDir } from '../src/io/text-data.js';
import { loadModel } from '../src/models/load.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { loadNative } from '../src/native/addon.js';
import { readCalibrationTokens } from '../src/quant/calibration.js';
import { quantizeModel } from '../src/quant/pipeline.js';
import { decoderLinearBits, storedBits } from '../src/quant/quantize-checkpoint.js';
import { weakCounts } from '../src/quant/weak-count.js';
import { quantizeOptions } from '../src/recipe/quantize-options.js';
import { isEntryPoint, parseBenchArgs } from './cli.js';
import { writeReport, type Row } from './report.js';

interface RefPpl {
  tinystories: { ppl: number };
  wikitext2: { ppl: number };
}

interface Job {
  run: string;
  section: Record<string, unknown>;
  ref: RefPpl | null;
}

function jobs(golden: {
  runs: Record<string, { score: string | null } & Record<string, unknown>>;
  owq: Record<string, { ppl: RefPpl }>;
}): Job[] {
  const gwq = Object.entries(golden.runs).map(([run, r]) => ({
    run,
    section: {
      method: 'gwq',
      wbits: r.bits,
      group_size: r.group,
      outlier_ratio: r.rho,
      gwq_score: r.score ?? 'grad',
      gwq_quantizer: r.quantizer,
      grad_samples: r.S_gradient_windows ?? 1,
    },
    ref: r.ppl as RefPpl,
  }));
  const owq = [3.1, 4.1].flatMap((targetBit) =>
    (['hessian', 'fisher'] as const).map((sensitivity) => ({
      run: `owq target_bit ${targetBit}${sensitivity === 'fisher' ? ' --sensitivity fisher (S = 1)' : ''}`,
      section: { method: 'owq', wbits: Math.floor(targetBit), target_bit: targetBit, sensitivity },
      ref: targetBit === 3.1 ? golden.owq[sensitivity === 'fisher' ? 'owq_fisher_tb3.1_S1' : 'owq_tb3.1'].ppl : null,
    })),
  );
  return [...gwq, ...owq];
}

export async function runGwqTable(): Promise<string> {
  const native = loadNative();
  const data = sharedDataDir();
  const modelDir = path.join(data, 'models/tinystories-656k');
  const tokenizer = loadTokenizer(modelDir);
  const golden = JSON.parse(fs.readFileSync(path.join(data, 'golden/gwq-tinystories-656k.json'), 'utf8'));
  const windows = readCalibrationTokens(
    path.join(data, 'golden/calib-c4-tinystories-656k-n128-L512.json'),
    { nsamples: 128, seqlen: 512 },
    Number.MAX_SAFE_INTEGER,
  ).windows;
  const tinyText = path.join(data, 'text/tinystories/tinystories-valid-sample.txt');
  const rows: Row[] = [];
  for (const job of jobs(golden)) {
    process.stderr.write(`gwq-table: ${job.run}\n`);
    const model = loadModel(modelDir);
    const o = quantizeOptions(job.section);
    const t0 = performance.now();
    const { layers } = await quantizeModel(model, { ...o, nOut: weakCounts(model.config, o.bits, o.budget), windows });
    const seconds = (performance.now() - t0) / 1000;
    const tiny = (await evaluateData(model, tokenizer, tinyText)).ppl;
    const wiki = (await evaluateData(model, tokenizer, 'wikitext2')).ppl;
    const diff = (ours: number, ref: number | undefined) => (ref === undefined ? '-' : (100 * (ours - ref)) / ref);
    rows.push({
      run: job.run,
      "papers' bits": decoderLinearBits(layers.values()),
      'stored bits': storedBits(layers.values()),
      'quantize s': seconds,
      'tinystories ref': job.ref?.tinystories.ppl ?? '-',
      'tinystories ours': tiny,
      'tinystories diff %': diff(tiny, job.ref?.tinystories.ppl),
      'wikitext2 ref': job.ref?.wikitext2.ppl ?? '-',
      'wikitext2 ours': wiki,
      'wikitext2 diff %': diff(wiki, job.ref?.wikitext2.ppl),
    });
  }
  return writeReport({
    name: 'gwq-table',
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', threads: native.threads(), node: process.version },
    sections: [
      {
        title:
          'TinyStories-656K GWQ-style table (every row method gwq; rho 0 is plain RTN / GPTQ) and OWQ with the Fisher sensitivity: ours vs the reference (perplexity)',
        rows,
      },
    ],
  }).md;
}

if (isEntryPoint(import.meta.url)) {
  parseBenchArgs({
    usage: 'npm run gwq:table',
    describe:
      'The GWQ-style reference table of TinyStories-656K (../shared/data/golden/gwq-tinystories-656k.md) and OWQ with the Fisher sensitivity, ours beside the reference (perplexity, ~12 minutes). Writes bench/results/gwq-table.{json,md} and prints the markdown.',
  });
  process.stdout.write(fs.readFileSync(await runGwqTable(), 'utf8'));
}
