/**
 * Models whose frozen weights live in half storage on the GPU (src/gpu/half.ts): an F16 and a BF16 copy of
 * TinyStories-656K (written here with the project's safetensors writer; the shared checkpoint is F32) against
 * the CPU on the same copy, the device memory of their weights, and a packed OWQ checkpoint (F16 scales and weak
 * columns in the file) evaluated with f16 scales and weak columns on the device against the CPU.
 * The first test measures GpuContext.stats.bytes, so it runs on a fresh pool (each test file has its own process).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backward, crossEntropy } from '../../src/autograd/index.js';
import type { GpuArray } from '../../src/gpu/array.js';
import type { HalfFormat } from '../../src/gpu/half.js';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import { loadModel } from '../../src/models/load.js';
import type { CausalLM } from '../../src/models/model.js';
import { packedLinearsOf } from '../../src/models/weak-deltas.js';
import { hostValues, readScalars, toHost } from '../../src/tensor/device.js';
import { LOGIT_ABS_TOL } from '../helpers/golden-logits.js';
import { packedTinyStories } from '../helpers/packed.js';
import { tinyStoriesDir } from '../helpers/paths.js';
import { useGpu } from './helpers.js';

const gpu = useGpu();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-gpu-half-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const IDS = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12]);
const TARGETS = shiftedTargets(IDS, 5);
/** The loss of the same values on both devices, f32 kernels with different summation orders (as models.test.ts). */
const LOSS_REL_TOL = 1e-5;

/** TinyStories-656K with every tensor stored in `format` (config.json copied), written once. */
function halfCopy(format: HalfFormat): string {
  const dir = path.join(tmp, `tinystories-${format}`);
  if (fs.existsSync(dir)) return dir;
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(tinyStoriesDir, 'config.json'), path.join(dir, 'config.json'));
  const src = openSafetensors(path.join(tinyStoriesDir, 'model.safetensors'));
  const dtype: 'F16' | 'BF16' = format === 'f16' ? 'F16' : 'BF16';
  const tensors = src.names().map((name) => ({ name, dtype, shape: src.info(name).shape, data: src.readF32(name) }));
  src.close();
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}

let owq: Promise<string> | null = null;
/** The packed OWQ 4-bit TinyStories checkpoint (test/helpers/packed.ts), written once. */
function owqDir(): Promise<string> {
  owq ??= packedTinyStories(path.join(tmp, 'owq'));
  return owq;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The model's logits and loss on the CPU, then on the GPU (the model moved in place), compared. */
async function expectGpuMatchesCpu(model: CausalLM, what: string): Promise<void> {
  const logitsCpu = model.forward(IDS, { batch: 2 });
  const lossCpu = crossEntropy(logitsCpu, TARGETS).data[0];
  await model.toDevice(gpu().ctx);
  const logitsGpu = model.forward(IDS, { batch: 2 });
  expect(maxAbsDiff(await toHost(logitsGpu), logitsCpu.data), what).toBeLessThan(LOGIT_ABS_TOL);
  const [lossGpu] = await readScalars([crossEntropy(logitsGpu, TARGETS).storage]);
  expect(Math.abs(lossGpu - lossCpu) / lossCpu, what).toBeLessThan(LOSS_REL_TOL);
}

/** Bytes of the device buffers (pool size classes) of the model's parameters, the part in norms, and the names of
 * those in half storage. */
function deviceWeights(model: CausalLM): { bytes: number; normBytes: number; half: string[] } {
  let bytes = 0;
  let normBytes = 0;
  const half: string[] = [];
  for (const [name, t] of model.parameters()) {
    const s = t.storage as GpuArray;
    bytes += s.buffer.size;
    if (name.includes('norm')) normBytes += s.buffer.size;
    if (s.format !== 'f32') half.push(name);
  }
  return { bytes, normBytes, half };
}

describe('half checkpoints on the GPU', () => {
  it('an F16 copy of TinyStories-656K: its linear and embedding weights take half the device memory', async () => {
    const { ctx } = gpu();
    const f32 = loadModel(tinyStoriesDir);
    const f16 = loadModel(halfCopy('f16'));
    const b0 = ctx.stats.bytes;
    await f32.toDevice(ctx);
    const b1 = ctx.stats.bytes;
    await f16.toDevice(ctx);
    const b2 = ctx.stats.bytes;
    const full = deviceWeights(f32);
    const halved = deviceWeights(f16);
    expect(full.half).toEqual([]);
    // every linear weight and the (tied) embedding; the norms stay f32
    const weights = [...f16.parameters().keys()].filter((n) => !n.includes('norm'));
    expect(halved.half.sort()).toEqual(weights.sort());
    expect(b1 - b0, 'stats.bytes of the f32 model').toBe(full.bytes);
    expect(b2 - b1, 'stats.bytes of the f16 model').toBe(halved.bytes);
    expect(halved.normBytes).toBe(full.normBytes);
    expect(halved.bytes - halved.normBytes).toBe((full.bytes - full.normBytes) / 2);
    console.log(`TinyStories-656K weights on the device: f32 ${full.bytes} bytes, f16 ${halved.bytes} bytes`);
  });

  for (const format of ['f16', 'bf16'] as const) {
    it(`a ${format} copy of TinyStories-656K: the GPU's logits and loss are the CPU's on the same copy`, async () => {
      const model = loadModel(halfCopy(format));
      await expectGpuMatchesCpu(model, format);
      expect(deviceWeights(model).half.length).toBeGreaterThan(0);
    });
  }

  it('a packed OWQ checkpoint: f16 scales and weak columns on the device, the CPU’s logits and loss', async () => {
    const model = loadModel(await owqDir());
    const packed = [...packedLinearsOf(model).values()];
    expect(packed.length).toBeGreaterThan(0);
    await expectGpuMatchesCpu(model, 'packed OWQ');
    for (const l of packed) expect([l.gpuWeight?.scales.format, l.gpuWeight?.weak.format]).toEqual(['f16', 'f16']);
  });

  it('f16 weak columns made trainable after the move are widened to f32 at the next forward: the CPU’s gradients', async () => {
    const dir = await owqDir();
    const cpu = loadModel(dir);
    const weakCpu = [...packedLinearsOf(cpu).values()].map((l) => l.weak);
    for (const w of weakCpu) w.requiresGrad = true;
    backward(crossEntropy(cpu.forward(IDS, { batch: 2 }), TARGETS));
    const model = loadModel(dir);
    await model.toDevice(gpu().ctx);
    const layers = [...packedLinearsOf(model).values()];
    for (const l of layers) l.weak.requiresGrad = true;
    backward(crossEntropy(model.forward(IDS, { batch: 2 }), TARGETS));
    for (const [i, l] of layers.entries()) {
      expect(l.gpuWeight?.weak.format).toBe('f32');
      expect(l.weak.storage).toBe(l.gpuWeight?.weak);
      const want = weakCpu[i].grad as Float32Array;
      const scale = Math.max(...Array.from(want, Math.abs));
      // f32 kernels on both devices, different summation orders (as models.test.ts)
      expect(maxAbsDiff(await hostValues(l.weak.grad!), want) / scale, `weak ${i}`).toBeLessThan(1e-4);
    }
  });
});
