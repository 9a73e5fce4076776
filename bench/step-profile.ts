/**
 * Where one full training step of the opt-125m-shaped random model goes (issue 17: every weight trainable,
 * batch 1 x 512, fp32): each native kernel timed by wrapping the engine's kernel table, per phase (forward,
 * backward, optimizer); each backward op timed by wrapping its tape node (inclusive), split into its kernels and
 * the rest (allocation, JS); and what no kernel and no node accounts for (the tape's own walk and bookkeeping).
 * `node dist/bench/step-profile.js` prints the tables and writes bench/results/step-profile.{json,md}.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backward, crossEntropy, zeroGrad } from '../src/autograd/index.js';
import { shiftedTargets } from '../src/eval/perplexity.js';
import { initRandom } from '../src/models/init-random.js';
import { loadModel } from '../src/models/load.js';
import { loadNative } from '../src/native/addon.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { AdamW, clipScale, gradNorm } from '../src/train/adamw.js';
import { Rng } from '../src/util/rng.js';
import { isEntryPoint, parseBenchArgs } from './cli.js';
import { hostMachine, writeReport, type Row } from './report.js';

const SEQLEN = 512;
const ITERS = 2;

type Phase = 'forward' | 'backward' | 'optimizer';

/** Accumulated seconds and calls per key. */
class Tally {
  readonly seconds = new Map<string, number>();
  readonly calls = new Map<string, number>();
  add(key: string, s: number): void {
    this.seconds.set(key, (this.seconds.get(key) ?? 0) + s);
    this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
  }
}

/**
 * Wraps every function of the native kernel table (the object kernelsFor returns) to time it under `phase()`;
 * returns the function that puts the originals back.
 */
function timeKernels(phase: () => Phase, tally: Tally, total: { s: number }): () => void {
  const table = loadNative() as unknown as Record<string, unknown>;
  const originals = { ...table };
  for (const [name, f] of Object.entries(originals)) {
    if (typeof f !== 'function') continue;
    table[name] = (...args: unknown[]) => {
      const t0 = performance.now();
      const r = (f as (...a: unknown[]) => unknown)(...args);
      const s = (performance.now() - t0) / 1000;
      tally.add(`${phase()} ${name}`, s);
      total.s += s;
      return r;
    };
  }
  return () => Object.assign(table, originals);
}

/** Wraps each node of the graph below `loss` so its backward is timed by op, with the kernel time inside it. */
function timeNodes(loss: Tensor, nodes: Tally, inside: Tally, kernelTotal: { s: number }): void {
  const seen = new Set<Tensor>();
  const stack = [loss];
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (seen.has(t) || t.node === null) continue;
    seen.add(t);
    const node = t.node;
    const f = node.backward;
    node.backward = (g, held) => {
      const k0 = kernelTotal.s;
      const t0 = performance.now();
      const r = f(g, held);
      nodes.add(node.op, (performance.now() - t0) / 1000);
      inside.add(node.op, kernelTotal.s - k0);
      return r;
    };
    stack.push(...node.inputs);
  }
}

async function profileRows(dir: string): Promise<{ phases: Row[]; kernels: Row[]; ops: Row[] }> {
  const model = loadModel(dir);
  const params = [...model.parameters().values()];
  for (const p of params) p.requiresGrad = true;
  const opt = new AdamW(params, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  const rng = new Rng(5);
  const ids = Int32Array.from({ length: SEQLEN }, () => Math.floor(rng.next() * model.config.vocabSize));
  const targets = shiftedTargets(ids, SEQLEN);
  let phase: Phase = 'forward';
  const kernels = new Tally();
  const kernelTotal = { s: 0 };
  const walls = new Tally();
  const nodes = new Tally();
  const inside = new Tally();
  const step = async (profiled: boolean) => {
    zeroGrad(params);
    const timed = async (p: Phase, f: () => unknown) => {
      phase = p;
      const k0 = kernelTotal.s;
      const t0 = performance.now();
      const r = await f();
      if (profiled) {
        walls.add(p, (performance.now() - t0) / 1000);
        walls.add(`${p} kernels`, kernelTotal.s - k0);
      }
      return r;
    };
    const loss = (await timed('forward', () => crossEntropy(model.forward(ids, { batch: 1 }), targets))) as Tensor;
    if (profiled) timeNodes(loss, nodes, inside, kernelTotal);
    await timed('backward', () => backward(loss));
    await timed('optimizer', async () => opt.step(1e-4, clipScale(await gradNorm(params), 1)));
  };
  const restore = timeKernels(() => phase, kernels, kernelTotal);
  try {
    await step(false); // warm-up
    kernels.seconds.clear();
    kernels.calls.clear();
    for (let i = 0; i < ITERS; i++) await step(true);
  } finally {
    restore();
  }
  const per = (s: number) => (s / ITERS) * 1e3;
  const wall = (p: string) => walls.seconds.get(p) ?? 0;
  const stepWall = wall('forward') + wall('backward') + wall('optimizer');
  const phases = (['forward', 'backward', 'optimizer'] as const).map((p) => ({
    phase: p,
    'ms / step': per(wall(p)),
    'in kernels ms': per(wall(`${p} kernels`)),
    'outside kernels ms': per(wall(p) - wall(`${p} kernels`)),
    'of step': wall(p) / stepWall,
  }));
  const kernelRows = [...kernels.seconds]
    .sort((a, b) => b[1] - a[1])
    .filter(([, s]) => s / stepWall >= 0.002)
    .map(([key, s]) => ({
      'phase kernel': key,
      'calls / step': (kernels.calls.get(key) ?? 0) / ITERS,
      'ms / step': per(s),
      'of step': s / stepWall,
    }));
  const opRows = [...nodes.seconds]
    .sort((a, b) => b[1] - a[1])
    .map(([op, s]) => ({
      'backward op': op,
      'calls / step': (nodes.calls.get(op) ?? 0) / ITERS,
      'ms / step': per(s),
      'in kernels ms': per(inside.seconds.get(op) ?? 0),
      'outside kernels ms': per(s - (inside.seconds.get(op) ?? 0)),
      'of step': s / stepWall,
    }));
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const tape = wall('backward') - sum(nodes.seconds);
  const tapeKernels = wall('backward kernels') - sum(inside.seconds);
  opRows.push({
    'backward op': 'the tape itself (walk, gradient sums and copies, checks)',
    'calls / step': 1,
    'ms / step': per(tape),
    'in kernels ms': per(tapeKernels),
    'outside kernels ms': per(tape - tapeKernels),
    'of step': tape / stepWall,
  });
  return { phases, kernels: kernelRows, ops: opRows };
}

/** Profiles the step and writes bench/results/step-profile.{json,md}; returns the markdown path. */
export async function runStepProfile(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-bench-step-profile-'));
  try {
    initRandom({ like: 'opt-125m', out: dir, seed: 0 });
    process.stderr.write('bench: training step profile\n');
    const { phases, kernels, ops } = await profileRows(dir);
    return writeReport({
      name: 'step-profile',
      machine: hostMachine(),
      sections: [
        {
          title: `Training step phases, opt-125m-shaped, every weight trainable, 1 x ${SEQLEN}, mean of ${ITERS}`,
          rows: phases,
        },
        { title: 'Native kernels by phase (at least 0.2% of the step)', rows: kernels },
        { title: 'Backward by tape op (inclusive), its kernels and the rest (allocation, JS)', rows: ops },
      ],
    }).md;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (isEntryPoint(import.meta.url)) {
  parseBenchArgs({
    usage: 'npm run bench:step-profile',
    describe:
      'Where one full training step of the opt-125m-shaped model goes: per phase, per native kernel, per backward op. Writes bench/results/step-profile.{json,md} and prints the markdown.',
  });
  process.stdout.write(fs.readFileSync(await runStepProfile(), 'utf8'));
}
