/**
 * adapter_config.json's base: a LoRA adapter names the full-precision model it was trained on; a QLoRA adapter names
 * the full-precision model its packed base was quantized from (quantization_config.json `source`), and the packed
 * base separately (`wct_packed_base`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG_FILE, readAdapter, writeAdapter, type LoraWeights } from '../../src/io/peft-adapter.js';
import { QUANT_CONFIG_FILE } from '../../src/io/packed-checkpoint.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { packedTinyStories } from '../helpers/packed.js';
import { tinyStoriesDir } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-peft-base-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const HP = { rank: 2, alpha: 4, dropout: 0 };
/** One adapted linear of TinyStories' shapes (values do not matter here). */
const LAYERS = new Map<string, LoraWeights>([
  [
    'model.layers.0.self_attn.q_proj',
    { a: new Tensor(new Float32Array(2 * 128), [2, 128]), b: new Tensor(new Float32Array(128 * 2), [128, 2]) },
  ],
]);

const writtenConfig = (dir: string): Record<string, unknown> =>
  JSON.parse(fs.readFileSync(path.join(dir, ADAPTER_CONFIG_FILE), 'utf8'));

describe('adapter_config.json base_model_name_or_path', () => {
  let packedDir: string;
  beforeAll(async () => {
    packedDir = await packedTinyStories(path.join(tmp, 'packed'));
  });

  it('LoRA on a full-precision base: that base, no wct_packed_base', () => {
    const dir = path.join(tmp, 'lora');
    writeAdapter(dir, LAYERS, HP, tinyStoriesDir);
    const cfg = writtenConfig(dir);
    expect(cfg.base_model_name_or_path).toBe(tinyStoriesDir);
    expect('wct_packed_base' in cfg).toBe(false);
    expect(readAdapter(dir).config.wct_packed_base).toBeUndefined();
  });

  it('QLoRA: the full-precision source of the packed base, and the packed base beside it', () => {
    const dir = path.join(tmp, 'qlora');
    writeAdapter(dir, LAYERS, HP, packedDir);
    const cfg = writtenConfig(dir);
    expect(cfg.base_model_name_or_path).toBe(path.resolve(tinyStoriesDir));
    expect(cfg.wct_packed_base).toBe(packedDir);
    const back = readAdapter(dir).config;
    expect(back.base_model_name_or_path).toBe(path.resolve(tinyStoriesDir));
    expect(back.wct_packed_base).toBe(packedDir);
  });

  it('a packed base that does not record its source (written before it did): the packed base itself', () => {
    const old = path.join(tmp, 'packed-old');
    fs.cpSync(packedDir, old, { recursive: true });
    const file = path.join(old, QUANT_CONFIG_FILE);
    const { source: _, ...qc } = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify(qc));
    const dir = path.join(tmp, 'qlora-old');
    writeAdapter(dir, LAYERS, HP, old);
    const cfg = writtenConfig(dir);
    expect(cfg.base_model_name_or_path).toBe(old);
    expect(cfg.wct_packed_base).toBe(old);
  });
});
