/**
 * LoRA (docs/ARCHITECTURE.md section 6): the adapted layer (PEFT init, scaling, dropout only while training), adapters
 * on a whole model (targets, ranks, stable parameter order), merging (PEFT's property tests: merged equals
 * unmerged and differs from the base, untouched parameters stay bit-identical), the PEFT adapter files
 * (exact key names and config, round trip, bad files), and QLoRA over a packed model's PackedLinear.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backward, crossEntropy } from '../../src/autograd/index.js';
import { shiftedTargets } from '../../src/eval/perplexity.js';
import { InputError } from '../../src/errors.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, readAdapter, writeAdapter } from '../../src/io/peft-adapter.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { DenseLinear } from '../../src/models/linear.js';
import { loadModel } from '../../src/models/load.js';
import {
  applyLora,
  loadAdapter,
  loraLayersOf,
  loraParameters,
  mergeLora,
  type LoraConfig,
} from '../../src/models/lora.js';
import { LoraLinear } from '../../src/models/lora-linear.js';
import type { CausalLM } from '../../src/models/model.js';
import { PackedLinear } from '../../src/models/packed-linear.js';
import { quantizeCheckpoint } from '../../src/quant/quantize-checkpoint.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { quantizeOptions } from '../../src/recipe/quantize-options.js';
import { inputErrorMessage } from '../helpers/errors.js';
import { optTinyDir, tinyStoriesDir } from '../helpers/paths.js';

const LLAMA_TARGETS = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
];
const DESIGN: LoraConfig = { rank: 64, alpha: 16, dropout: 0.1, targets: 'all' };
const IDS = Int32Array.from([1, 17, 300, 45, 9, 1000, 2, 77, 5, 12, 400, 33]);

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-lora-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Fills every adapter's B with U(-scale, scale): a trained-looking adapter (B = 0 is the identity). */
function randomizeB(layers: Map<string, LoraLinear>, seed = 7, scale = 0.05): void {
  const rng = new Rng(seed);
  for (const l of layers.values()) for (let i = 0; i < l.b.size; i++) l.b.data[i] = (rng.next() * 2 - 1) * scale;
}

function logits(model: CausalLM): Float32Array {
  return model.forward(IDS, { batch: 2 }).data as Float32Array;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function randomTensor(shape: number[], rng: Rng): Tensor {
  const t = new Tensor(new Float32Array(shape[0] * shape[1]), shape);
  for (let i = 0; i < t.size; i++) t.data[i] = rng.next() * 2 - 1;
  return t;
}

describe('LoraLinear', () => {
  const rng = new Rng(3);
  const base = new DenseLinear(randomTensor([24, 40], rng), new Tensor(new Float32Array(24).fill(0.5), [24]));
  const x = randomTensor([5, 40], rng);

  it("starts as its base: PEFT's init, A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0, both trainable", () => {
    const l = new LoraLinear(base, { rank: 8, alpha: 16, dropout: 0.1, seed: 1 });
    expect(l.a.shape).toEqual([8, 40]);
    expect(l.b.shape).toEqual([24, 8]);
    expect(l.scale).toBe(2);
    const bound = 1 / Math.sqrt(40);
    expect(Math.max(...l.a.data.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...l.a.data.map(Math.abs))).toBeGreaterThan(0.8 * bound);
    expect([...l.b.data].every((v) => v === 0)).toBe(true);
    expect(l.a.requiresGrad && l.b.requiresGrad).toBe(true);
    expect(l.a.dtype).toBe('f32');
    expect(Buffer.compare(Buffer.from(l.forward(x).data.buffer), Buffer.from(base.forward(x).data.buffer))).toBe(0);
    // the same seed gives the same init
    expect(new LoraLinear(base, { rank: 8, alpha: 16, dropout: 0.1, seed: 1 }).a.data).toEqual(l.a.data);
  });

  it('computes base(x) + (alpha / r) x Aᵀ Bᵀ, and applies dropout only while training', () => {
    const l = new LoraLinear(base, { rank: 8, alpha: 16, dropout: 0.5, seed: 2 });
    for (let i = 0; i < l.b.size; i++) l.b.data[i] = Math.sin(i);
    const y = l.forward(x).data;
    const y0 = base.forward(x).data;
    for (const [row, col] of [
      [0, 0],
      [4, 23],
      [2, 11],
    ]) {
      let delta = 0;
      for (let r = 0; r < 8; r++) {
        let xa = 0;
        for (let k = 0; k < 40; k++) xa += x.data[row * 40 + k] * l.a.data[r * 40 + k];
        delta += xa * l.b.data[col * 8 + r];
      }
      expect(y[row * 24 + col]).toBeCloseTo(y0[row * 24 + col] + 2 * delta, 5);
    }
    expect(l.forward(x).data).toEqual(y); // eval mode: deterministic
    l.training = true;
    const t1 = l.forward(x).data;
    const t2 = l.forward(x).data;
    expect(maxAbsDiff(t1, y)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(t1, t2)).toBeGreaterThan(1e-3); // a fresh mask per call
  });

  it('takes float64 weights from a float64 base (gradient checks)', () => {
    const base64 = new DenseLinear(new Tensor(Float64Array.from(base.weight.data), [24, 40]));
    const l = new LoraLinear(base64, { rank: 4, alpha: 8, dropout: 0, seed: 1 });
    expect(l.a.dtype).toBe('f64');
    expect(l.b.dtype).toBe('f64');
  });

  it('rejects a rank outside [1, min(in, out)], a bad alpha or dropout', () => {
    expect(() => new LoraLinear(base, { rank: 25, alpha: 16, dropout: 0, seed: 1 })).toThrow(/rank 25.*\[1, 24\]/);
    expect(() => new LoraLinear(base, { rank: 0, alpha: 16, dropout: 0, seed: 1 })).toThrow(RangeError);
    expect(() => new LoraLinear(base, { rank: 4, alpha: 0, dropout: 0, seed: 1 })).toThrow(/alpha/);
    expect(() => new LoraLinear(base, { rank: 4, alpha: 16, dropout: 1, seed: 1 })).toThrow(/dropout/);
  });
});

describe('applyLora', () => {
  it('adapts all 7 linears of both TinyStories blocks (rank 64, alpha 16) with r (in + out) parameters each', () => {
    const model = loadModel(tinyStoriesDir);
    const before = logits(model);
    const layers = applyLora(model, DESIGN, 0);
    expect([...layers.keys()]).toEqual([0, 1].flatMap((i) => LLAMA_TARGETS.map((t) => `model.layers.${i}.${t}`)));
    for (const [name, l] of layers) {
      expect(model.linears().get(name)).toBe(l);
      expect(l.base).toBeInstanceOf(DenseLinear);
      expect(l.training).toBe(false);
    }
    const { names, params } = loraParameters(layers);
    expect(names.slice(0, 2)).toEqual([
      'model.layers.0.self_attn.q_proj.lora_A.weight',
      'model.layers.0.self_attn.q_proj.lora_B.weight',
    ]);
    expect(params).toHaveLength(28);
    // q, o: 128x128; k, v: 64x128; gate, up: 384x128; down: 128x384
    const perBlock = 64 * (256 + 192 + 192 + 256 + 512 + 512 + 512);
    expect(params.reduce((n, p) => n + p.size, 0)).toBe(2 * perBlock);
    expect(maxAbsDiff(logits(model), before)).toBe(0); // B = 0: the adapted model is the base
    // the order does not depend on how the targets are listed, and a seed gives the same init
    const again = applyLora(loadModel(tinyStoriesDir), { ...DESIGN, targets: [...LLAMA_TARGETS].reverse() }, 0);
    expect([...again.keys()]).toEqual([...layers.keys()]);
    expect(again.get('model.layers.1.mlp.down_proj')!.a.data).toEqual(
      layers.get('model.layers.1.mlp.down_proj')!.a.data,
    );
    // ... and a layer's init does not depend on which other layers are targeted
    const alone = applyLora(loadModel(tinyStoriesDir), { ...DESIGN, targets: ['mlp.down_proj'] }, 0);
    expect(alone.get('model.layers.1.mlp.down_proj')!.a.data).toEqual(
      layers.get('model.layers.1.mlp.down_proj')!.a.data,
    );
  });

  it('setTraining switches every adapter’s dropout', () => {
    const model = loadModel(tinyStoriesDir);
    const layers = applyLora(model, { rank: 4, alpha: 8, dropout: 0.1, targets: ['mlp.up_proj'] }, 1);
    const t = loraParameters(layers);
    t.setTraining(true);
    expect([...layers.values()].every((l) => l.training)).toBe(true);
    t.setTraining(false);
    expect([...layers.values()].some((l) => l.training)).toBe(false);
  });

  it('targets a subset by the names relative to the block prefix (OPT: fc1)', () => {
    const model = loadModel(optTinyDir);
    const layers = applyLora(model, { rank: 2, alpha: 4, dropout: 0, targets: ['fc1', 'self_attn.v_proj'] }, 0);
    const n = model.numBlocks;
    expect(layers.size).toBe(2 * n);
    expect([...layers.keys()].slice(0, 2)).toEqual([
      'model.decoder.layers.0.self_attn.v_proj',
      'model.decoder.layers.0.fc1',
    ]);
  });

  it('rejects an unknown target (listing the valid ones), a rank too large for a layer, a rank below 1 — before changing the model', () => {
    const model = loadModel(tinyStoriesDir);
    expect(() => applyLora(model, { ...DESIGN, targets: ['self_attn.qkv_proj'] }, 0)).toThrow(RangeError);
    expect(() => applyLora(model, { ...DESIGN, targets: ['q_proj'] }, 0)).toThrow(
      /"q_proj" is not a linear .*valid: self_attn\.q_proj, self_attn\.k_proj, .*mlp\.down_proj/,
    );
    // k_proj is [64, 128]: rank 65 does not fit
    expect(() => applyLora(model, { ...DESIGN, rank: 65 }, 0)).toThrow(
      /rank 65 .*model\.layers\.0\.self_attn\.k_proj.*\[64, 128\].*rank <= 64/,
    );
    expect(() => applyLora(model, { ...DESIGN, rank: 0 }, 0)).toThrow(/rank 0/);
    expect(loraLayersOf(model).size).toBe(0);
  });
});

describe('mergeLora', () => {
  it('merged logits equal base + adapter within 1e-5 (fp32, random B) and differ from the base; the rest stays bit-identical', () => {
    const model = loadModel(tinyStoriesDir);
    const base = logits(model);
    const originals = new Map([...model.parameters()].map(([n, t]) => [n, t]));
    const baseCopies = new Map([...model.parameters()].map(([n, t]) => [n, Float32Array.from(t.data)]));
    const layers = applyLora(model, DESIGN, 0);
    randomizeB(layers);
    const adapted = logits(model);
    expect(maxAbsDiff(adapted, base)).toBeGreaterThan(1e-2);
    const merged = mergeLora(model);
    expect(merged).toEqual([...layers.keys()]);
    expect(loraLayersOf(model).size).toBe(0);
    // fp32 rounds W + sBA once and x Wᵀ + s (x Aᵀ) Bᵀ in other places: the logits (|max| ~16, where the fp32
    // spacing is 1.9e-6) agree to 1e-5 of their scale, two orders below the adapter's effect
    const scale = adapted.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
    expect(maxAbsDiff(logits(model), adapted)).toBeLessThanOrEqual(1e-5 * scale);
    for (const [name, t] of model.parameters()) {
      const isMerged = layers.has(name.replace(/\.weight$/, ''));
      expect(t === originals.get(name), name).toBe(!isMerged);
      // the base's own tensors are never written to: merged weights are new tensors
      expect(
        Buffer.compare(Buffer.from(originals.get(name)!.data.buffer), Buffer.from(baseCopies.get(name)!.buffer)),
        name,
      ).toBe(0);
      if (isMerged) expect((model.linears().get(name.replace(/\.weight$/, '')) as DenseLinear).weight).toBe(t);
    }
  });
});

describe('mergeLora, exactly', () => {
  // Two fp32 summation orders over K inputs (x W'^T against x W^T + s (x A^T) B^T) differ by up to about K * 2^-24 on
  // O(1) outputs: 2.3e-5 for down_proj's K = 384 (measured 1.9e-5 with OpenBLAS's AVX-512 kernels; 1e-5 held elsewhere).
  it('a merged layer equals its adapted layer within max(1e-5, K * 2^-24) (fp32) on O(1) outputs', () => {
    const model = loadModel(tinyStoriesDir);
    const layers = applyLora(model, DESIGN, 3);
    randomizeB(layers, 11, 0.2);
    const rng = new Rng(5);
    const xs = new Map([...layers].map(([name, l]) => [name, randomTensor([7, l.inFeatures], rng)]));
    const adapted = new Map([...layers].map(([name, l]) => [name, l.forward(xs.get(name)!).data]));
    mergeLora(model);
    for (const [name, layer] of model.linears()) {
      expect(maxAbsDiff(layer.forward(xs.get(name)!).data, adapted.get(name)!), name).toBeLessThanOrEqual(
        Math.max(1e-5, layer.inFeatures * 2 ** -24),
      );
    }
  });

  it('float64: merged logits equal base + adapter to 1e-10', () => {
    const model = loadModel(tinyStoriesDir, { dtype: 'f64' });
    const layers = applyLora(model, DESIGN, 0);
    randomizeB(layers);
    const adapted = model.forward(IDS, { batch: 2 }).data;
    mergeLora(model);
    expect(maxAbsDiff(model.forward(IDS, { batch: 2 }).data, adapted)).toBeLessThanOrEqual(1e-10);
  });
});

describe('PEFT adapter files', () => {
  it('writes PEFT’s key names and config, and reads back identical tensors and config', () => {
    const model = loadModel(tinyStoriesDir);
    const layers = applyLora(model, DESIGN, 5);
    randomizeB(layers);
    const dir = path.join(tmp, 'adapter');
    writeAdapter(dir, layers, DESIGN, tinyStoriesDir);
    expect(fs.readdirSync(dir).sort()).toEqual([ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]);
    const st = openSafetensors(path.join(dir, ADAPTER_WEIGHTS_FILE));
    try {
      expect(st.metadata).toEqual({ format: 'pt' });
      expect(st.names().sort()).toEqual(
        [...layers.keys()]
          .flatMap((n) => [`base_model.model.${n}.lora_A.weight`, `base_model.model.${n}.lora_B.weight`])
          .sort(),
      );
      expect(st.info('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight')).toEqual({
        dtype: 'F32',
        shape: [64, 128],
      });
      expect(st.info('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight')).toEqual({
        dtype: 'F32',
        shape: [128, 64],
      });
    } finally {
      st.close();
    }
    expect(JSON.parse(fs.readFileSync(path.join(dir, ADAPTER_CONFIG_FILE), 'utf8'))).toEqual({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 64,
      lora_alpha: 16,
      lora_dropout: 0.1,
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      modules_to_save: null,
      base_model_name_or_path: tinyStoriesDir,
      init_lora_weights: true,
      use_rslora: false,
      layers_to_transform: null,
    });
    const back = readAdapter(dir);
    expect(back.config).toEqual(JSON.parse(fs.readFileSync(path.join(dir, ADAPTER_CONFIG_FILE), 'utf8')));
    expect(new Set(back.layers.keys())).toEqual(new Set(layers.keys()));
    for (const [name, l] of layers) {
      const r = back.layers.get(name)!;
      expect(r.a.shape).toEqual(l.a.shape);
      expect(r.b.shape).toEqual(l.b.shape);
      expect(r.a.data).toEqual(l.a.data);
      expect(r.b.data).toEqual(l.b.data);
    }
    // loaded over a fresh base: same outputs, no dropout, nothing trainable
    const adapted = logits(model);
    const other = loadModel(tinyStoriesDir);
    const loaded = loadAdapter(other, dir);
    expect(loaded.size).toBe(14);
    for (const l of loaded.values()) {
      expect(l.training).toBe(false);
      expect(l.a.requiresGrad || l.b.requiresGrad).toBe(false);
    }
    expect(maxAbsDiff(logits(other), adapted)).toBe(0);
    // a re-save replaces the adapter directory; a directory that is not one is refused
    writeAdapter(dir, layers, DESIGN, tinyStoriesDir);
    const notAdapter = path.join(tmp, 'not-adapter');
    fs.mkdirSync(notAdapter);
    fs.writeFileSync(path.join(notAdapter, 'config.json'), '{}');
    expect(inputErrorMessage(() => writeAdapter(notAdapter, layers, DESIGN, tinyStoriesDir))).toMatch(
      /not an adapter directory/,
    );
    expect(fs.readdirSync(notAdapter)).toEqual(['config.json']);
  });

  it('a missing file, a bad config field, a module the model lacks, a shape mismatch: InputError naming file and key', () => {
    const src = loadModel(tinyStoriesDir);
    const layers = applyLora(src, { rank: 4, alpha: 8, dropout: 0, targets: ['self_attn.q_proj'] }, 0);
    const good = path.join(tmp, 'good');
    writeAdapter(good, layers, { rank: 4, alpha: 8, dropout: 0 }, 'tinystories');
    const copy = (name: string): string => {
      const d = path.join(tmp, name);
      fs.cpSync(good, d, { recursive: true });
      return d;
    };

    const noWeights = copy('no-weights');
    fs.rmSync(path.join(noWeights, ADAPTER_WEIGHTS_FILE));
    expect(inputErrorMessage(() => readAdapter(noWeights))).toBe(
      `${path.join(noWeights, ADAPTER_WEIGHTS_FILE)}: file: not found`,
    );
    const noConfig = copy('no-config');
    fs.rmSync(path.join(noConfig, ADAPTER_CONFIG_FILE));
    expect(inputErrorMessage(() => readAdapter(noConfig))).toBe(
      `${path.join(noConfig, ADAPTER_CONFIG_FILE)}: file: not found`,
    );
    const rslora = copy('rslora');
    const cfgFile = path.join(rslora, ADAPTER_CONFIG_FILE);
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), use_rslora: true }));
    expect(inputErrorMessage(() => readAdapter(rslora))).toMatch(/adapter_config\.json: use_rslora: expected false/);
    const badR = copy('bad-r');
    fs.writeFileSync(
      path.join(badR, ADAPTER_CONFIG_FILE),
      JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), r: 8, use_rslora: false }),
    );
    expect(inputErrorMessage(() => readAdapter(badR))).toMatch(/lora_A\.weight: shape \[4,128\] does not match r = 8/);

    // an adapter for OPT over TinyStories: the module does not exist
    const opt = loadModel(optTinyDir);
    const optDir = path.join(tmp, 'opt-adapter');
    writeAdapter(
      optDir,
      applyLora(opt, { rank: 2, alpha: 4, dropout: 0, targets: ['fc1'] }, 0),
      { rank: 2, alpha: 4, dropout: 0 },
      'opt',
    );
    const target = loadModel(tinyStoriesDir);
    expect(inputErrorMessage(() => loadAdapter(target, optDir))).toMatch(
      /adapter_model\.safetensors: base_model\.model\.model\.decoder\.layers\.\d\.fc1\.lora_A\.weight: the model has no linear layer/,
    );
    // the right names with a wrong in_features
    const wrongShape = path.join(tmp, 'wrong-shape');
    const rng = new Rng(1);
    writeAdapter(
      wrongShape,
      new Map([
        ['model.layers.0.self_attn.q_proj', { a: randomTensor([4, 100], rng), b: randomTensor([128, 4], rng) }],
      ]),
      { rank: 4, alpha: 8, dropout: 0 },
      'tinystories',
    );
    expect(inputErrorMessage(() => loadAdapter(target, wrongShape))).toBe(
      `${path.join(wrongShape, ADAPTER_WEIGHTS_FILE)}: base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight: ` +
        'shape [4,100] does not match model.layers.0.self_attn.q_proj (expected [4, 128])',
    );
    expect(loraLayersOf(target).size).toBe(0);
    expect(() => readAdapter(path.join(tmp, 'nowhere'))).toThrow(InputError);
  });
});

describe('PEFT adapter values', () => {
  it('a NaN or an infinity in lora_A or lora_B is an InputError naming the file, the tensor and the index', () => {
    const model = loadModel(tinyStoriesDir);
    const layers = applyLora(model, { rank: 2, alpha: 4, dropout: 0, targets: ['self_attn.q_proj'] }, 0);
    const first = [...layers.values()][0];
    for (const [tensor, value] of [
      ['a', NaN],
      ['b', -Infinity],
    ] as const) {
      const dir = path.join(tmp, `non-finite-${tensor}`);
      const t = first[tensor];
      const saved = t.data[7];
      t.data[7] = value;
      writeAdapter(dir, layers, { rank: 2, alpha: 4, dropout: 0 }, 'tinystories');
      t.data[7] = saved;
      const key = `base_model.model.model.layers.0.self_attn.q_proj.lora_${tensor.toUpperCase()}.weight`;
      expect(inputErrorMessage(() => readAdapter(dir))).toBe(
        `${path.join(dir, ADAPTER_WEIGHTS_FILE)}: tensor ${key}: element 7 is ${value} (stored values must be finite)`,
      );
    }
  });
});

describe('QLoRA: adapters over a packed model', () => {
  let packedDir: string;
  beforeAll(async () => {
    packedDir = path.join(tmp, 'rtn4');
    await quantizeCheckpoint(tinyStoriesDir, packedDir, quantizeOptions({ method: 'rtn', wbits: 4, nsamples: 1 }), {
      force: false,
    });
  });

  it('wraps every PackedLinear; forward and backward reach A and B only', () => {
    const model = loadModel(packedDir);
    const base = logits(model);
    const layers = applyLora(model, DESIGN, 0);
    for (const l of layers.values()) expect(l.base).toBeInstanceOf(PackedLinear);
    expect(maxAbsDiff(logits(model), base)).toBe(0);
    randomizeB(layers);
    const { params, setTraining } = loraParameters(layers);
    setTraining(true);
    const loss = crossEntropy(model.forward(IDS, { batch: 2 }), shiftedTargets(IDS, 6));
    backward(loss);
    for (const p of params) {
      expect(p.grad).not.toBeNull();
      expect(p.gradData!.some((g) => g !== 0)).toBe(true);
    }
    for (const p of model.parameters().values()) expect(p.grad).toBeNull();
    for (const l of layers.values()) expect((l.base as PackedLinear).weak.grad).toBeNull();
  });

  it('refuses to merge into the packed base, before changing anything', () => {
    const model = loadModel(packedDir);
    applyLora(model, { rank: 4, alpha: 8, dropout: 0, targets: 'all' }, 0);
    expect(() => mergeLora(model)).toThrow(
      /model\.layers\.0\.self_attn\.q_proj: merging LoRA into packed low-bit weights would requantize them/,
    );
    expect(loraLayersOf(model).size).toBe(14);
  });
});
