/**
 * `npm run bench`: engine figures measured in one run, as ratios where a baseline exists.
 *  - GEMM through the engine (TS -> addon -> cblas_sgemm) vs the same call timed inside C++;
 *  - bf16 GEMM (oneDNN, or bf16-rounded sgemm where this CPU has no bf16 path) vs fp32;
 *  - causal attention forward / backward at GPT-2-small shape;
 *  - forward tokens/s and peak RSS of an opt-125m-shaped random model at seqlen 512;
 *  - a full forward+backward step (every weight trainable) of the same model;
 *  - tokenizing WikiText-2's test split with TinyStories-656K's tokenizer (tokens/s);
 *  - the packed kernels (bench/packed.ts), quantization (bench/quant.ts), the WCT training step
 *    (bench/train.ts), the AdamW step over 125M parameters (bench/optimizer.ts) and decode speed against
 *    --threads and a competing process (bench/threads.ts), each in its own report.
 * `npm run bench -- --device gpu` runs the WebGPU bench instead (bench/gpu.ts: the adapter's copy bandwidth, dense
 * and packed GEMM/GEMV, each beside the CPU path in the same run); `--device cpu` is the default.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backward, crossEntropy, zeroGrad } from '../src/autograd/index.js';
import { shiftedTargets } from '../src/eval/perplexity.js';
import { initRandom } from '../src/models/init-random.js';
import { loadEvalText, sharedDataDir } from '../src/io/text-data.js';
import { loadModel } from '../src/models/load.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { loadNative } from '../src/native/addon.js';
import { gemmDims, type AttentionDims } from '../src/native/types.js';
import { Rng } from '../src/util/rng.js';
import { parseBenchArgs } from './cli.js';
import { runGpuBench } from './gpu.js';
import { runOptimizerBench } from './optimizer.js';
import { runPackedBench } from './packed.js';
import { runQuantBench } from './quant.js';
import { runThreadsBench } from './threads.js';
import { runTrainBench } from './train.js';
import { writeReport, type Row } from './report.js';

function timeIt(iters: number, f: () => void): number {
  f(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) f();
  return (performance.now() - t0) / 1000 / iters;
}

function randomArray(n: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n }, () => rng.next() - 0.5);
}

function gemmRows(): Row[] {
  const native = loadNative();
  const rng = new Rng(1);
  const shapes = [
    [512, 768, 3072],
    [512, 3072, 768],
    [512, 768, 768],
  ];
  return shapes.map(([m, n, k]) => {
    const a = randomArray(m * k, rng);
    const b = randomArray(k * n, rng);
    const c = new Float32Array(m * n);
    const d = gemmDims(m, n, k);
    const flops = 2 * m * n * k;
    const iters = 20;
    const direct = native.benchSgemmDirect(m, n, k, iters);
    const engine = timeIt(iters, () => native.gemm(a, b, c, d));
    const bf16 = timeIt(iters, () => native.gemmBf16(a, b, c, d));
    return {
      shape: `${m}x${n}x${k}`,
      'engine GFLOP/s': flops / engine / 1e9,
      'direct cblas GFLOP/s': flops / direct / 1e9,
      'engine / direct': direct / engine,
      'bf16 GFLOP/s': flops / bf16 / 1e9,
      'bf16 / fp32': engine / bf16,
    };
  });
}

/** Causal attention at GPT-2-small shape (B 1, T 512, H 12, D 64), forward with and without keeping the probabilities, and backward. */
function attentionRows(): Row[] {
  const native = loadNative();
  const rng = new Rng(2);
  const d: AttentionDims = { batch: 1, tq: 512, tk: 512, heads: 12, kvHeads: 12, headDim: 64, scale: 1 / 8 };
  const n = d.tq * d.heads * d.headDim;
  const [q, k, v, dout] = [0, 1, 2, 3].map(() => randomArray(n, rng));
  const out = new Float32Array(n);
  const probs = new Float32Array(d.heads * d.tq * d.tk);
  const [dq, dk, dv] = [0, 1, 2].map(() => new Float32Array(n));
  return [
    {
      pass: 'forward (inference: no probabilities kept)',
      ms: timeIt(10, () => native.attentionForward(q, k, v, out, null, d)) * 1e3,
    },
    {
      pass: 'forward (training: probabilities kept)',
      ms: timeIt(10, () => native.attentionForward(q, k, v, out, probs, d)) * 1e3,
    },
    { pass: 'backward', ms: timeIt(10, () => native.attentionBackward(q, k, v, probs, dout, dq, dk, dv, d)) * 1e3 },
  ];
}

function modelRows(dir: string): Row[] {
  const model = loadModel(dir);
  const seqlen = 512;
  const rng = new Rng(3);
  const ids = Int32Array.from({ length: seqlen }, () => Math.floor(rng.next() * model.config.vocabSize));
  const forward = timeIt(3, () => model.forward(ids, { batch: 1 }));
  const rssForward = process.resourceUsage().maxRSS * 1024;
  const params = [...model.parameters().values()];
  for (const p of params) p.requiresGrad = true;
  const targets = shiftedTargets(ids, seqlen);
  const step = timeIt(2, () => {
    zeroGrad(params);
    backward(crossEntropy(model.forward(ids, { batch: 1 }), targets));
  });
  const paramCount = params.reduce((s, p) => s + p.size, 0);
  return [
    {
      measure: 'forward, seqlen 512, batch 1',
      'time s': forward,
      'tokens/s': seqlen / forward,
      'peak RSS MiB': rssForward / 2 ** 20,
    },
    {
      measure: `forward+backward, all ${(paramCount / 1e6).toFixed(1)}M weights trainable`,
      'time s': step,
      'tokens/s': seqlen / step,
      'peak RSS MiB': (process.resourceUsage().maxRSS * 1024) / 2 ** 20,
    },
  ];
}

function tokenizerRows(): Row[] {
  const tokenizer = loadTokenizer(path.join(sharedDataDir(), 'models/tinystories-656k'));
  const { text } = loadEvalText('wikitext2');
  const started = performance.now();
  const ids = tokenizer.encode(text);
  const seconds = (performance.now() - started) / 1000;
  return [
    {
      text: 'WikiText-2 test (one string)',
      characters: text.length,
      tokens: ids.length,
      'time s': seconds,
      'tokens/s': ids.length / seconds,
    },
  ];
}

async function main(): Promise<void> {
  const native = loadNative();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-bench-'));
  try {
    process.stderr.write('bench: GEMM\n');
    const gemm = gemmRows();
    process.stderr.write('bench: attention\n');
    const attention = attentionRows();
    process.stderr.write('bench: tokenizer\n');
    const tokenizer = tokenizerRows();
    process.stderr.write('bench: opt-125m-shaped model\n');
    initRandom({ like: 'opt-125m', out: dir, seed: 0 });
    const model = modelRows(dir);
    const { md } = writeReport({
      name: 'foundation',
      machine: {
        cpu: os.cpus()[0]?.model ?? 'unknown',
        threads: native.threads(),
        'cpu path': native.cpuPath(),
        'oneDNN bf16 native': String(native.bf16Native()),
        node: process.version,
      },
      sections: [
        { title: 'GEMM (fp32 engine vs direct OpenBLAS call, same run)', rows: gemm },
        { title: 'Causal attention, B 1, T 512, H 12, D 64 (fp32)', rows: attention },
        { title: 'opt-125m-shaped random model (fp32)', rows: model },
        { title: 'Tokenizer (TinyStories-656K, tokenizer.json)', rows: tokenizer },
      ],
    });
    process.stdout.write(fs.readFileSync(md, 'utf8'));
    process.stdout.write(fs.readFileSync(runPackedBench(), 'utf8'));
    process.stdout.write(fs.readFileSync(await runQuantBench(), 'utf8'));
    process.stdout.write(fs.readFileSync(runTrainBench(), 'utf8'));
    process.stdout.write(fs.readFileSync(runOptimizerBench(), 'utf8'));
    process.stdout.write(fs.readFileSync(runThreadsBench(), 'utf8'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const { device } = parseBenchArgs({
  usage: 'npm run bench [-- --device cpu|gpu]',
  describe:
    "cpu: GEMM, bf16 GEMM, attention, the opt-125m-shaped forward and training step and the tokenizer into bench/results/foundation.{json,md}, then the packed kernels, quantization, the WCT step, the optimizer step and decode against --threads into bench/results/{packed,quant,train,optimizer,threads}.{json,md}. gpu: the WebGPU bench (bench/gpu.ts) alone, into bench/results/gpu.{json,md}. Each report's markdown is printed on stdout.",
  options: (y) =>
    y.option('device', {
      choices: ['cpu', 'gpu'] as const,
      requiresArg: true,
      default: 'cpu' as const,
      describe: 'cpu: the CPU benches; gpu: the WebGPU bench instead',
    }),
});

if (device === 'gpu') process.stdout.write(fs.readFileSync(await runGpuBench(), 'utf8'));
else await main();
