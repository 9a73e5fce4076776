/**
 * The models on the GPU (llvmpipe here): the golden logits and greedy continuation of the reference PyTorch runs,
 * KV-cache decoding, a packed model against the CPU, the weak-column gradients against float64 finite
 * differences, and one training step that reads nothing back before the loss and, in steady state, creates no
 * buffer.
 */
import { describe, expect, it, vi } from 'vitest';
import { add, backward, crossEntropy, zeroGrad } from '../../src/autograd/index.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import { generate } from '../../src/models/generate.js';
import { readConfig } from '../../src/models/families/registry.js';
import { buildModel, loadModel, loadWeights } from '../../src/models/load.js';
import { PackedLinear } from '../../src/models/packed-linear.js';
import { owq } from '../../src/quant/owq.js';
import { toPacked } from '../../src/quant/pack.js';
import { applyLora, loraParameters } from '../../src/models/lora.js';
import type { CausalLM } from '../../src/models/model.js';
import { hostValues, keep, readScalars, release, scoped, toGpu, toHost } from '../../src/tensor/device.js';
import { fromArray, type Tensor } from '../../src/tensor/tensor.js';
import { AdamW, gradSquaredNorm } from '../../src/train/adamw.js';
import type { GpuArray } from '../../src/gpu/array.js';
import { windowCapacity } from '../../src/gpu/windows.js';
import { collect } from '../helpers/errors.js';
import { checkAgainstGolden, golden, LOGIT_ABS_TOL } from '../helpers/golden-logits.js';
import { packEveryLinear } from '../helpers/pack-every-linear.js';
import { optTinyDir, tinyStoriesDir } from '../helpers/paths.js';
import { useGpu } from './helpers.js';

const gpu = useGpu();

async function onGpu(dir: string): Promise<CausalLM> {
  const model = loadModel(dir);
  await model.toDevice(gpu().ctx);
  return model;
}

const IDS = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12]);
const TARGETS = shiftedTargets(IDS, 5);

/**
 * A binding limit of 256 KiB: under half of TinyStories' [2048, 128] embedding and of 64 positions' logits (the
 * training step runs 64 tokens: at 128, its saved attention probabilities, 512 KiB, are over the limit and the
 * attention kernels bind them whole).
 */
const SPLIT_LIMIT = 256 * 1024;
const TRAIN_TOKENS = 64;
/**
 * Split vs unsplit: the same kernels per element, except the GEMMs whose reduction is split into chunks (the
 * lm_head's dW and dX add partial products in another order): a few f32 roundings, 1e-5 relative.
 */
const SPLIT_REL_TOL = 1e-5;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('models on the GPU', () => {
  it('TinyStories-656K (Llama, GQA, tied embeddings) matches the reference logits', async () => {
    await checkAgainstGolden(await onGpu(tinyStoriesDir), golden('tinystories-656k'));
  });

  it('opt-tiny-random (OPT) matches the reference logits', async () => {
    await checkAgainstGolden(await onGpu(optTinyDir), golden('opt-tiny-random'));
  });

  it('TinyStories-656K greedy generation from BOS reproduces the reference 64 tokens', async () => {
    const want = golden('tinystories-656k').greedy_from_bos_64!;
    const model = await onGpu(tinyStoriesDir);
    const got = await collect(generate(model, Int32Array.of(want[0]), { maxNewTokens: want.length - 1 }));
    expect([want[0], ...got]).toEqual(want);
  });

  it('KV-cache decoding gives the full forward’s logits (both families)', async () => {
    for (const dir of [tinyStoriesDir, optTinyDir]) {
      const model = await onGpu(dir);
      const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 37 + 5) % 1000);
      const full = await toHost(model.forward(ids, { batch: 1 }));
      const cache = model.newCache(12);
      model.forward(ids.subarray(0, 7), { batch: 1, cache });
      const vocab = model.config.vocabSize;
      for (const t of [7, 8, 9, 10, 11]) {
        const step = await toHost(model.forward(ids.subarray(t, t + 1), { batch: 1, cache }));
        expect(maxAbsDiff(step, full.subarray(t * vocab, (t + 1) * vocab)), `${dir} position ${t}`).toBeLessThan(
          LOGIT_ABS_TOL,
        );
      }
      cache.dispose();
    }
  });

  it('a packed model (every linear 3-bit with weak columns) gives the CPU’s logits and loss', async () => {
    for (const dir of [tinyStoriesDir, optTinyDir]) {
      const cpu = loadModel(dir);
      packEveryLinear(cpu, 'f32');
      const logitsCpu = cpu.forward(IDS, { batch: 2 });
      const lossCpu = crossEntropy(logitsCpu, TARGETS).data[0];
      await cpu.toDevice(gpu().ctx);
      const logitsGpu = cpu.forward(IDS, { batch: 2 });
      expect(maxAbsDiff(await toHost(logitsGpu), logitsCpu.data), dir).toBeLessThan(LOGIT_ABS_TOL);
      const [lossGpu] = await readScalars([crossEntropy(logitsGpu, TARGETS).storage]);
      expect(Math.abs(lossGpu - lossCpu) / lossCpu, dir).toBeLessThan(1e-5);
    }
  });

  it('a packed token embedding (--embed-bits 8, the tied lm_head packed too): the CPU’s logits, its rows decoded on the device', async () => {
    const config = readConfig(tinyStoriesDir);
    const embedding = (): Map<string, PackedLinear> => {
      const [table] = [loadWeights(tinyStoriesDir, config).get('model.embed_tokens.weight')!];
      const [rows, cols] = table.shape;
      const identity = new Float32Array(cols * cols).map((_, i) => (i % (cols + 1) === 0 ? 1 : 0));
      const q = owq(table.data as Float32Array, identity, rows, cols, {
        bits: 8,
        nOut: 0,
        tuning: 'minmax',
        groupSize: 0,
        actOrder: false,
      });
      return new Map([['model.embed_tokens', new PackedLinear(toPacked(q))]]);
    };
    const cpu = buildModel(config, loadWeights(tinyStoriesDir, config), embedding());
    const logitsCpu = cpu.forward(IDS, { batch: 2 }).data;
    const model = buildModel(config, loadWeights(tinyStoriesDir, config), embedding());
    await model.toDevice(gpu().ctx);
    const uploads = vi.spyOn(gpu().ctx, 'upload');
    const logits = model.forward(IDS, { batch: 2 });
    // the RoPE tables of the positions are uploaded; the [tokens, hidden] rows are not
    const rowsSize = IDS.length * config.hiddenSize;
    expect(uploads.mock.calls.map((c) => c[0].length)).not.toContain(rowsSize);
    uploads.mockRestore();
    expect(maxAbsDiff(await toHost(logits), logitsCpu)).toBeLessThan(LOGIT_ABS_TOL);
  });

  it('weak-column gradients on the GPU pass the float64 finite-difference check (both families)', async () => {
    for (const dir of [tinyStoriesDir, optTinyDir]) {
      const ref = loadModel(dir, { dtype: 'f64' });
      const weak64 = packEveryLinear(ref, 'f64');
      const model = loadModel(dir);
      const weak = packEveryLinear(model, 'f32');
      await model.toDevice(gpu().ctx);
      for (const w of weak) w.requiresGrad = true;
      backward(crossEntropy(model.forward(IDS, { batch: 2 }), TARGETS));
      const loss64 = () => crossEntropy(ref.forward(IDS, { batch: 2 }), TARGETS).data[0];
      const eps = 1e-5;
      for (const [i, w] of weak.entries()) {
        const g = (await hostValues(w.grad!)) as Float32Array;
        // the direction of steepest ascent of this tensor, where the check is most sensitive
        const x = weak64[i].data;
        const norm = Math.hypot(...g);
        const v = Float64Array.from(g, (gi) => gi / norm);
        const analytic = g.reduce((s, gi, j) => s + gi * v[j], 0);
        const saved = Float64Array.from(x);
        x.forEach((_, j) => (x[j] = saved[j] + eps * v[j]));
        const up = loss64();
        x.forEach((_, j) => (x[j] = saved[j] - eps * v[j]));
        const down = loss64();
        x.set(saved);
        const numeric = (up - down) / (2 * eps);
        // f32 gradients through f32 kernels: relative error of a few 1e-5 (measured under 1e-4)
        expect(Math.abs(analytic - numeric) / Math.abs(numeric), `${dir} weak tensor ${i}`).toBeLessThan(1e-3);
      }
    }
  });

  it('a WCT step reads nothing back before the loss, and in steady state creates no buffer', async () => {
    const { ctx } = gpu();
    const model = loadModel(tinyStoriesDir);
    const weak = packEveryLinear(model, 'f32');
    await model.toDevice(ctx);
    for (const w of weak) w.requiresGrad = true;
    const opt = new AdamW(weak, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
    const reads = vi.spyOn(ctx, 'read');
    const step = () => {
      zeroGrad(weak);
      const loss = scoped(() => {
        const l = crossEntropy(model.forward(IDS, { batch: 2 }), TARGETS);
        backward(l);
        return keep(l.storage);
      });
      opt.step(1e-3);
      return loss;
    };
    const first = step();
    release(step());
    expect(reads).not.toHaveBeenCalled();
    const created = ctx.stats.created;
    release(step());
    const last = step();
    expect(ctx.stats.created - created, 'buffers created by steps 3 and 4').toBe(0);
    const [before, after] = await readScalars([first, last]);
    expect(reads).toHaveBeenCalledTimes(1);
    expect(after).toBeLessThan(before);
    reads.mockRestore();
    opt.dispose();
  });

  it('LoRA and QLoRA with dropout on the GPU: the CPU’s loss and adapter gradients (the same masks), no read-back before the loss', async () => {
    const { ctx } = gpu();
    const adapted = (packed: boolean): { model: CausalLM; params: Tensor[] } => {
      const model = loadModel(tinyStoriesDir);
      if (packed) packEveryLinear(model, 'f32');
      const layers = applyLora(model, { rank: 4, alpha: 8, dropout: 0.25, targets: 'all' }, 11);
      const { params } = loraParameters(layers);
      for (const l of layers.values()) {
        l.training = true;
        // B = 0 at init would leave A's gradient 0: a fixed nonzero B makes both gradients informative
        l.b.data.forEach((_, j) => (l.b.data[j] = Math.sin(j + 1) * 0.05));
      }
      return { model, params };
    };
    for (const packed of [false, true]) {
      const cpu = adapted(packed);
      const lossCpu = crossEntropy(cpu.model.forward(IDS, { batch: 2 }), TARGETS);
      backward(lossCpu);
      const onGpu = adapted(packed);
      await onGpu.model.toDevice(ctx);
      const reads = vi.spyOn(ctx, 'read');
      const lossGpu = crossEntropy(onGpu.model.forward(IDS, { batch: 2 }), TARGETS);
      backward(lossGpu);
      expect(reads, 'read-backs before the loss').not.toHaveBeenCalled();
      reads.mockRestore();
      const what = packed ? 'QLoRA' : 'LoRA';
      const [l] = await readScalars([lossGpu.storage]);
      expect(Math.abs(l - lossCpu.data[0]) / lossCpu.data[0], what).toBeLessThan(1e-5);
      for (const [i, p] of onGpu.params.entries()) {
        const g = await hostValues(p.grad!);
        const want = cpu.params[i].grad as Float32Array;
        const scale = Math.max(...Array.from(want, Math.abs));
        // f32 kernels on both devices, different summation orders: a few 1e-6 of the gradient's scale
        expect(maxAbsDiff(g, want) / scale, `${what} gradient ${i}`).toBeLessThan(1e-4);
      }
    }
  });

  it('with a binding limit that splits the tied embedding/lm_head and the logits: the golden logits, and the unsplit loss and gradients', async () => {
    const { ctx } = gpu();
    const g = golden('tinystories-656k');
    const ids = Int32Array.from(g.token_ids).subarray(0, TRAIN_TOKENS);
    const targets = shiftedTargets(ids, ids.length);
    // the loss, global gradient norm and gradients of every parameter (the tied embedding/lm_head included)
    const trainStep = async (): Promise<{ loss: number; norm: number; grads: Float32Array[] }> => {
      const model = await onGpu(tinyStoriesDir);
      const params = [...model.parameters().values()];
      for (const p of params) p.requiresGrad = true;
      const loss = crossEntropy(model.forward(ids, { batch: 1 }), targets);
      backward(loss);
      const [l, sq] = await readScalars([loss.storage, gradSquaredNorm(params)!]);
      const grads = await Promise.all(params.map(async (p) => (await hostValues(p.grad!)) as Float32Array));
      return { loss: l, norm: Math.sqrt(sq), grads };
    };
    const unsplit = await trainStep();
    const limit = ctx.bindingLimit;
    ctx.bindingLimit = SPLIT_LIMIT;
    try {
      const vocab = 2048;
      const model = await onGpu(tinyStoriesDir);
      const table = model.parameters().get('model.embed_tokens.weight')!;
      // at least 3 windows each: the [2048, 128] table and the [64, 2048] logits hold over twice a window
      const capacity = windowCapacity(table.storage as GpuArray); // f32 elements, as the logits
      expect(table.size).toBeGreaterThan(2 * capacity);
      expect(ids.length * vocab).toBeGreaterThan(2 * capacity);
      await checkAgainstGolden(model, g);
      const split = await trainStep();
      expect(Math.abs(split.loss - unsplit.loss) / unsplit.loss).toBeLessThan(SPLIT_REL_TOL);
      expect(Math.abs(split.norm - unsplit.norm) / unsplit.norm).toBeLessThan(SPLIT_REL_TOL);
      for (const [i, g] of split.grads.entries()) {
        const scale = unsplit.grads[i].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(maxAbsDiff(g, unsplit.grads[i]) / scale, `gradient ${i}`).toBeLessThan(SPLIT_REL_TOL);
      }
    } finally {
      ctx.bindingLimit = limit;
    }
  });

  it('refuses ops over tensors on two devices, naming the op', () => {
    const a = fromArray([1, 2, 3], [3]);
    const b: Tensor = toGpu(fromArray([1, 2, 3], [3]), gpu().ctx);
    expect(() => add(a, b)).toThrow(/^add: device mismatch \(Tensor\(f32, \[3\]\) vs Tensor\(f32, \[3\], gpu\)\)/);
    expect(() => b.data).toThrow(/is on the GPU: read it back/);
  });
});
