/**
 * The zero-shot reference table of TinyStories-656K (../shared/data/golden/zeroshot-tinystories-656k.md): every task
 * in full in both BOS settings on the full-precision model, and PIQA / ARC-Easy without BOS on the packed OWQ 3.1-bit
 * checkpoint (quantized here with the reference's calibration windows; the reference's row is its fake-quantized
 * model), each beside the reference's acc and acc_norm, with the seconds each task took. Writes
 * bench/results/zeroshot-table.{json,md}. `npm run build && node dist/bench/zeroshot-table.js` (~10 minutes).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evaluateTasks, resolveTasks, defaultTaskDir } from '../src/eval/zeroshot/run-tasks.js';
import { sharedDataDir } from '../src/io/text-data.js';
import { loadModel } from '../src/models/load.js';
import type { CausalLM } from '../src/models/model.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { quantizeCheckpoint } from '../src/quant/quantize-checkpoint.js';
import { quantizeOptions } from '../src/recipe/quantize-options.js';
import { isEntryPoint, parseBenchArgs } from './cli.js';
import { writeReport, type Row } from './report.js';

type RefMetrics = { acc: number; acc_norm: number };

async function rows(label: string, model: CausalLM, tasks: string[], bos: boolean, ref: (t: string) => RefMetrics) {
  const tokenizer = loadTokenizer(path.join(sharedDataDir(), 'models/tinystories-656k'));
  const results = await evaluateTasks(model, tokenizer, resolveTasks(tasks, defaultTaskDir()), { bos });
  return results.map((r): Row => {
    const want = ref(r.task);
    return {
      model: label,
      task: r.task,
      bos: bos ? 'yes' : 'no',
      n: r.n,
      'acc ref': want.acc,
      'acc ours': r.acc,
      'acc_norm ref': want.acc_norm,
      'acc_norm ours': r.acc_norm!,
      'equal counts': r.acc === want.acc && r.acc_norm === want.acc_norm ? 'yes' : 'no',
      seconds: r.seconds,
    };
  });
}

export async function runZeroshotTable(): Promise<string> {
  const data = sharedDataDir();
  const modelDir = path.join(data, 'models/tinystories-656k');
  const golden = JSON.parse(fs.readFileSync(path.join(data, 'golden/zeroshot-tinystories-656k.json'), 'utf8'));
  const out: Row[] = [];
  const all = ['piqa', 'arc_easy', 'arc_challenge', 'hellaswag'];
  for (const bos of [false, true]) {
    process.stderr.write(`zeroshot-table: fp32, ${bos ? 'BOS' : 'no BOS'}\n`);
    out.push(...(await rows('fp32', loadModel(modelDir), all, bos, (t) => golden.fp32[t][bos ? 'bos' : 'nobos'])));
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-zeroshot-'));
  try {
    const packed = path.join(tmp, 'owq3.1');
    const calib = path.join(data, 'golden/calib-c4-tinystories-656k-n128-L512.json');
    const o = quantizeOptions({ method: 'owq', wbits: 3, target_bit: 3.1, calib_tokens: calib });
    await quantizeCheckpoint(modelDir, packed, o, { force: false });
    process.stderr.write('zeroshot-table: packed OWQ 3.1\n');
    const ref = (t: string) => golden.quantized_nobos['owq_tb3.1'][t].nobos;
    out.push(
      ...(await rows('packed OWQ 3.1 (ref: fake-quantized)', loadModel(packed), ['piqa', 'arc_easy'], false, ref)),
    );
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return writeReport({
    name: 'zeroshot-table',
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version },
    sections: [{ title: 'TinyStories-656K zero-shot (lm-eval 0.4.x rules): ours vs the reference scorer', rows: out }],
  }).md;
}

if (isEntryPoint(import.meta.url)) {
  parseBenchArgs({
    usage: 'npm run zeroshot:table',
    describe:
      'The zero-shot reference table of TinyStories-656K (../shared/data/golden/zeroshot-tinystories-656k.md): fp32 in both BOS settings and the packed OWQ 3.1-bit checkpoint, ours beside the reference (~10 minutes). Writes bench/results/zeroshot-table.{json,md} and prints the markdown.',
  });
  process.stdout.write(fs.readFileSync(await runZeroshotTable(), 'utf8'));
}
