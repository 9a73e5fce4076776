/**
 * The family registry: every spec's quantization description covers its block linears exactly once (for the
 * shipped models and every preset in configs/models), and Qwen2,
 * a spec of its own, runs the Llama forward pass with q/k/v biases: a random Qwen2-0.5B-shaped checkpoint
 * (`wct init-random --like qwen2-0.5b`) gives the same logits as the Llama path with attention biases (o_proj's
 * bias zero), and different logits when its q/k/v biases are ignored.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectedTensorShapes } from '../../src/models/checkpoint-tensors.js';
import { allFamilies, familyOf, parseConfig, readConfig } from '../../src/models/families/registry.js';
import { buildModel, loadModel } from '../../src/models/load.js';
import { add, layernorm, rmsnorm } from '../../src/autograd/index.js';
import type { NormTensors } from '../../src/models/model.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { wct } from '../helpers/cli.js';
import { optTinyDir, repoRoot, tinyStoriesDir } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-families-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sorted = (names: string[]) => [...names].sort().join(', ');

const PRESETS_DIR = path.join(repoRoot, 'configs/models');
const presetConfigs = fs
  .readdirSync(PRESETS_DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({ name: f, config: parseConfig(JSON.parse(fs.readFileSync(path.join(PRESETS_DIR, f), 'utf8')), f) }));

describe('family specs', () => {
  const configs = [
    ...[tinyStoriesDir, optTinyDir].map((dir) => ({ name: path.basename(dir), config: readConfig(dir) })),
    ...presetConfigs,
  ];
  for (const { name, config } of configs) {
    it(`${name} (${config.modelType ?? config.family}): OWQ ratios and true-sequential groups name each block linear exactly once`, () => {
      const spec = familyOf(config);
      const linears = sorted(spec.blockLinears(config).map((l) => l.name));
      expect(sorted(Object.keys(spec.quant.owqRatio))).toBe(linears);
      expect(sorted(spec.quant.sequential.flat())).toBe(linears);
      for (const g of spec.quant.scaling) for (const l of g.linears) expect(linears.split(', ')).toContain(l);
    });
  }

  it('every model_type maps to one spec', () => {
    const types = allFamilies().flatMap((f) => f.modelTypes);
    expect(new Set(types).size).toBe(types.length);
  });
});

describe('block parts and norms by name', () => {
  // block(i) = h + attention(norm1(h)), then + mlp(norm2(.)): the parts AWQ runs on their own, through the norms
  // read by name, must rebuild the whole block exactly.
  const cases = [
    { dir: tinyStoriesDir, norm: (x: Tensor, n: NormTensors) => rmsnorm(x, n.weight, 1e-6) },
    { dir: optTinyDir, norm: (x: Tensor, n: NormTensors) => layernorm(x, n.weight, n.bias!, 1e-5) },
  ];
  for (const { dir, norm } of cases) {
    const model = loadModel(dir);
    it(`${model.config.family}: block = its attention and MLP parts with the residuals`, () => {
      const ids = Int32Array.from([2, 17, 99, 5, 42, 7, 300, 11]);
      const { h, ctx } = model.embed(ids, { batch: 2 });
      const [attnNorm, mlpNorm] = familyOf(model.config).names.blockNorms.map((n) =>
        model.norm(`${model.blockPrefix(1)}.${n}`),
      );
      const mid = add(h, model.blockPart(1, 'attention', norm(h, attnNorm), ctx));
      const parts = add(mid, model.blockPart(1, 'mlp', norm(mid, mlpNorm), ctx)).data;
      expect(Array.from(parts)).toEqual(Array.from(model.block(1, h, ctx).data));
    });
  }

  it('norm(name) is the live tensor: writing it changes the model', () => {
    const model = loadModel(tinyStoriesDir);
    const ids = Int32Array.from([1, 5, 9]);
    const before = Array.from(model.forward(ids, { batch: 1 }).data);
    (model.norm('model.layers.0.input_layernorm').weight.data as Float32Array)[3] *= 2;
    expect(Array.from(model.forward(ids, { batch: 1 }).data)).not.toEqual(before);
    expect(() => model.norm('model.layers.0.no_such_norm')).toThrow(/no norm named/);
  });
});

describe('qwen2', () => {
  const dir = path.join(tmp, 'qwen2');

  it('a random Qwen2-0.5B-shaped checkpoint runs as the Llama path with q/k/v biases', () => {
    const r = wct(['init-random', '--like', 'qwen2-0.5b', '--layers', '1', '--out', dir], 300_000);
    expect(r.status, r.stderr).toBe(0);
    const qwen = loadModel(dir);
    expect(qwen.config).toMatchObject({
      family: 'llama',
      modelType: 'qwen2',
      attentionBias: true,
      attentionOutBias: false,
      tieWordEmbeddings: true,
    });
    // biases are zero in a random init: give q/k/v distinct random ones so they matter
    const weights = qwen.parameters();
    const rng = new Rng(7);
    for (const n of ['q_proj', 'k_proj', 'v_proj']) {
      const b = weights.get(`model.layers.0.self_attn.${n}.bias`)!.data as Float32Array;
      for (let i = 0; i < b.length; i++) b[i] = (rng.next() - 0.5) * 0.5;
    }
    const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const asLlama = parseConfig({
      ...raw,
      model_type: 'llama',
      architectures: ['LlamaForCausalLM'],
      attention_bias: true,
    });
    expect(familyOf(asLlama)).not.toBe(familyOf(qwen.config));
    const llamaWeights = new Map(weights);
    const hidden = asLlama.hiddenSize;
    llamaWeights.set('model.layers.0.self_attn.o_proj.bias', new Tensor(new Float32Array(hidden), [hidden]));
    expect(
      [...expectedTensorShapes(asLlama).keys()].filter((n) => !llamaWeights.has(n) && n !== 'lm_head.weight'),
    ).toEqual([]);
    const llama = buildModel(asLlama, llamaWeights);

    const ids = Int32Array.from([151643, 9707, 11, 1879, 0, 42]);
    const a = qwen.forward(ids, { batch: 1 }).data as Float32Array;
    const b = llama.forward(ids, { batch: 1 }).data as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    expect(maxDiff).toBe(0);

    const noBias = buildModel(
      parseConfig({ ...raw, model_type: 'llama', architectures: ['LlamaForCausalLM'] }),
      weights,
    );
    const c = noBias.forward(ids, { batch: 1 }).data as Float32Array;
    let biasEffect = 0;
    for (let i = 0; i < a.length; i++) biasEffect = Math.max(biasEffect, Math.abs(a[i] - c[i]));
    expect(biasEffect).toBeGreaterThan(1e-4);
  });
});
