/**
 * The training step against PyTorch (issue 17): an opt-125m-shaped random model, batch 1 x 512, fp32, at 2 threads
 * and at 1, both sides in their own worker process fed the same checkpoints and tokens, measured interleaved
 * (each rep runs one side then the other, alternating which goes first), medians of `--reps` reps after a warm-up:
 *  - the forward pass (no tape / torch.no_grad), and the full training step (every weight trainable; forward,
 *    backward, clipping to norm 1 and AdamW) split into forward / backward / optimizer;
 *  - the Weak Column Tuning step on the model with every block linear packed to 3 bits with 8 weak columns (a
 *    packed checkpoint as `wct quantize` writes it) against OWQ's own QuantMatMul formulation in PyTorch
 *    (bench/torch/step.py: dequantized frozen base + trainable fp32 weak columns);
 *  - each side's peak RSS: after the WCT phase (run first), then after the full-model phase.
 * Both workers run with OMP_WAIT_POLICY=passive (our addon's default) unless it is set. The losses of the first rep
 * are printed side by side (same weights, same tokens). Ratios are ours / PyTorch (below 1: we are faster). PyTorch runs where `python3` (or $PYTHON, or
 * /usr/bin/python3) imports torch (`apt-get install python3-torch`); without it the bench says so and runs ours.
 * `--baseline W` adds a third worker, the script W (torch-step-ours.js placed beside another build's dist/src: the code
 * before a change), measured in the same interleaved reps. `node dist/bench/torch-step.js [--reps N] [--baseline W]`
 * writes bench/results/torch-step.{json,md}.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { writePackedCheckpoint } from '../src/io/packed-checkpoint.js';
import { shiftedTargets } from '../src/eval/perplexity.js';
import { resolveTensorName } from '../src/models/checkpoint-tensors.js';
import { initRandom } from '../src/models/init-random.js';
import { loadModel } from '../src/models/load.js';
import type { PackedLinear } from '../src/models/packed-linear.js';
import type { PackedWeight } from '../src/native/packed.js';
import { packageRoot } from '../src/util/package-root.js';
import { Rng } from '../src/util/rng.js';
import { median } from './packed.js';
import { packEveryLinear } from './pack-every-linear.js';
import { OptionError } from '../src/errors.js';
import { isEntryPoint, parseBenchArgs } from './cli.js';
import { hostMachine, writeReport, type Row } from './report.js';

const SEQLEN = 512;
const BITS = 3;
const WEAK = 8;
const THREADS = [2, 1];

type Reply = Record<string, number>;
/** ours; PyTorch; and, with --baseline, another build's worker script (the code before a change). */
type Side = 'ours' | 'torch' | 'baseline';

/** A worker process answering one JSON line per command line. */
class Worker {
  private readonly replies: AsyncIterator<string>;
  private readonly proc: ChildProcessWithoutNullStreams;

  constructor(
    readonly side: Side,
    command: string,
    args: string[],
  ) {
    // Both sides' OpenMP threads sleep while they wait (our addon's default, src/native/addon.ts): on a shared
    // machine a spinning pool is slowed many times over, which would measure the load, not the step.
    this.proc = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'passive' },
    });
    this.proc.stderr.pipe(process.stderr);
    this.replies = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  async send(command: Record<string, unknown>): Promise<Reply> {
    this.proc.stdin.write(`${JSON.stringify(command)}\n`);
    const r = await this.replies.next();
    if (r.done === true) throw new Error(`bench torch-step: the ${this.side} worker exited during ${command.cmd}`);
    return JSON.parse(r.value) as Reply;
  }

  close(): void {
    this.proc.stdin.end();
  }
}

/** The first of $PYTHON, python3, /usr/bin/python3 that imports torch, or null. */
function pythonWithTorch(): string | null {
  const candidates = [process.env.PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => c !== undefined);
  return candidates.find((c) => spawnSync(c, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) ?? null;
}

/** The random model, and its copy with every block linear packed (OWQ, identity Hessian) as a packed checkpoint. */
function writeModels(root: string): { full: string; wct: string } {
  const full = path.join(root, 'full');
  const wct = path.join(root, 'wct');
  initRandom({ like: 'opt-125m', out: full, seed: 0 });
  const model = loadModel(full);
  packEveryLinear(model, { bits: BITS, weak: WEAK, dtype: 'f32' });
  const packed = new Map<string, PackedWeight>();
  for (const [name, layer] of model.linears()) packed.set(name, (layer as PackedLinear).packed);
  const nOut = Object.fromEntries([...packed.keys()].map((n) => [n, WEAK]));
  writePackedCheckpoint(
    wct,
    {
      sourceDir: full,
      weights: model.parameters(),
      storedName: resolveTensorName,
      packed,
      quantConfig: {
        format: 'wct-packed',
        version: 1,
        method: 'owq',
        bits: BITS,
        group_size: 0,
        target_bit: null,
        target_rank: null,
        tuning: 'minmax',
        act_order: false,
        true_sequential: false,
        percdamp: 0.01,
        calibration: null,
        n_out: nOut,
        avg_bits: { decoder_linear: BITS },
      },
    },
    false,
  );
  return { full, wct };
}

/** Per side, the replies of `reps` interleaved runs of `cmd` after one warm-up each. */
async function interleaved(workers: Worker[], cmd: string, reps: number): Promise<Map<Worker, Reply[]>> {
  const out = new Map(workers.map((w) => [w, [] as Reply[]]));
  for (const w of workers) await w.send({ cmd });
  for (let r = 0; r < reps; r++) {
    const order = r % 2 === 0 ? workers : [...workers].reverse();
    for (const w of order) out.get(w)!.push(await w.send({ cmd }));
  }
  return out;
}

/** Rows of median seconds per field, ours beside PyTorch's (and the baseline's) and the ratios to PyTorch. */
function compare(what: string, threads: number, runs: Map<Worker, Reply[]>, fields: string[]): Row[] {
  const bySide = new Map([...runs].map(([w, replies]) => [w.side, replies]));
  const med = (side: Side, f: string) => median(bySide.get(side)!.map((r) => r[f]));
  return fields.map((f) => {
    const row: Row = { what: `${what} ${f.replace(/_s$/, '')}`, threads, 'ours s': med('ours', f) };
    if (bySide.has('torch')) {
      row['PyTorch s'] = med('torch', f);
      row['ours / PyTorch'] = med('ours', f) / med('torch', f);
    }
    if (bySide.has('baseline')) {
      row['baseline s'] = med('baseline', f);
      if (bySide.has('torch')) row['baseline / PyTorch'] = med('baseline', f) / med('torch', f);
    }
    return row;
  });
}

/** A step's total time per rep (forward + backward + optimizer) as its own field. */
function withTotal(runs: Map<Worker, Reply[]>): Map<Worker, Reply[]> {
  for (const replies of runs.values()) for (const r of replies) r.step_s = r.forward_s + r.backward_s + r.optimizer_s;
  return runs;
}

const STEP_FIELDS = ['step_s', 'forward_s', 'backward_s', 'optimizer_s'];

async function phase(
  workers: Worker[],
  load: Record<string, unknown>,
  measure: (threads: number) => Promise<Row[]>,
): Promise<{ rows: Row[]; peaks: Reply }> {
  for (const w of workers) await w.send({ cmd: 'load', ...load });
  const rows: Row[] = [];
  for (const threads of THREADS) {
    for (const w of workers) await w.send({ cmd: 'threads', n: threads });
    rows.push(...(await measure(threads)));
  }
  const peaks: Reply = {};
  for (const w of workers) peaks[w.side] = (await w.send({ cmd: 'free' })).peak_mib;
  return { rows, peaks };
}

function memoryRow(what: string, peaks: Reply): Row {
  const row: Row = { what, 'ours MiB': peaks.ours };
  if (peaks.torch !== undefined) {
    row['PyTorch MiB'] = peaks.torch;
    row['ours / PyTorch'] = peaks.ours / peaks.torch;
  }
  if (peaks.baseline !== undefined) row['baseline MiB'] = peaks.baseline;
  return row;
}

function losses(runs: Map<Worker, Reply[]>): string {
  return [...runs].map(([w, r]) => `${w.side} ${r[0].loss.toFixed(5)}`).join(', ');
}

/** Runs the comparison and writes bench/results/torch-step.{json,md}; returns the markdown path. */
export async function runTorchStep(reps: number, baseline: string | null = null): Promise<string> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-bench-torch-step-'));
  const python = pythonWithTorch();
  if (python === null)
    process.stderr.write(
      'bench torch-step: no python3 with torch here (apt-get install python3-torch): our side only\n',
    );
  const oursScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch-step-ours.js');
  const workers = [new Worker('ours', process.execPath, [oursScript])];
  if (baseline !== null) workers.push(new Worker('baseline', process.execPath, [path.resolve(baseline)]));
  if (python !== null)
    workers.push(new Worker('torch', python, [path.join(packageRoot(), 'bench', 'torch', 'step.py')]));
  try {
    process.stderr.write('bench torch-step: writing the random and the packed model\n');
    const dirs = writeModels(root);
    const rng = new Rng(5);
    const ids = Int32Array.from({ length: SEQLEN }, () => Math.floor(rng.next() * 50272));
    const tokens = { ids: [...ids], targets: [...shiftedTargets(ids, SEQLEN)] };
    const checks: string[] = [];
    process.stderr.write('bench torch-step: WCT step\n');
    const wct = await phase(workers, { kind: 'wct', dir: dirs.wct, ...tokens }, async (threads) => {
      const runs = withTotal(await interleaved(workers, 'step', reps));
      checks.push(`WCT loss of the first rep at ${threads} threads: ${losses(runs)}`);
      return compare('WCT', threads, runs, STEP_FIELDS);
    });
    process.stderr.write('bench torch-step: forward and full training step\n');
    const full = await phase(workers, { kind: 'full', dir: dirs.full, ...tokens }, async (threads) => {
      const fwd = await interleaved(workers, 'forward', reps);
      const steps = withTotal(await interleaved(workers, 'step', reps));
      checks.push(`forward loss of the first rep at ${threads} threads: ${losses(fwd)}`);
      return [...compare('forward', threads, fwd, ['forward_s']), ...compare('train', threads, steps, STEP_FIELDS)];
    });
    return writeReport({
      name: 'torch-step',
      machine: {
        ...hostMachine(),
        pytorch: python ?? 'absent',
        baseline: baseline ?? 'none',
        reps,
        'loss checks': checks.join('; '),
      },
      sections: [
        {
          title: `Forward and full training step (every weight, AdamW, clip 1.0), opt-125m-shaped, 1 x ${SEQLEN} fp32, medians of ${reps}`,
          rows: full.rows,
        },
        {
          title: `WCT step, ${BITS}-bit with ${WEAK} weak columns per block linear, vs OWQ's QuantMatMul`,
          rows: wct.rows,
        },
        {
          title: 'Peak RSS of each side (WCT phase first, then the full model)',
          rows: [memoryRow('after the WCT phase', wct.peaks), memoryRow('after the full-model phase', full.peaks)],
        },
      ],
    }).md;
  } finally {
    for (const w of workers) w.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (isEntryPoint(import.meta.url)) {
  const argv = parseBenchArgs({
    usage: 'npm run bench:torch-step [-- --reps N] [-- --baseline DIST/bench/torch-step-ours.js]',
    describe:
      "The forward pass, the full training step and the WCT step of an opt-125m-shaped model against PyTorch (when python3 imports torch), interleaved reps, medians, with each side's peak RSS. Writes bench/results/torch-step.{json,md} and prints the markdown.",
    options: (y) =>
      y
        .option('reps', { type: 'number', default: 3, describe: 'Interleaved repetitions (medians)' })
        .option('baseline', {
          type: 'string',
          requiresArg: true,
          describe: "Another build's torch-step-ours.js (the code before a change), measured in the same reps",
        })
        .check((a) => {
          if (!Number.isInteger(a.reps) || a.reps < 1) throw new OptionError('--reps', 'expected a positive integer');
          return true;
        }),
  });
  runTorchStep(argv.reps, argv.baseline ?? null).then(
    (md) => process.stdout.write(fs.readFileSync(md, 'utf8')),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
