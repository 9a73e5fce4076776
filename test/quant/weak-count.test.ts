/** OWQ's weak-column counts from target_bit, against the counts the OWQ paper and code give. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/models/families/registry.js';
import { weakCounts } from '../../src/quant/weak-count.js';
import { roundHalfEven } from '../../src/util/round.js';
import { repoRoot, tinyStoriesDir } from '../helpers/paths.js';

const preset = (name: string) => {
  const file = path.join(repoRoot, 'configs/models', `${name}.json`);
  return parseConfig(JSON.parse(fs.readFileSync(file, 'utf8')), file);
};

/** OPT-6.7B's shapes (facebook/opt-6.7b config.json): hidden 4096, ffn 16384, 32 layers. */
const opt67b = () =>
  parseConfig(
    {
      architectures: ['OPTForCausalLM'],
      model_type: 'opt',
      hidden_size: 4096,
      ffn_dim: 16384,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      max_position_embeddings: 2048,
      word_embed_proj_dim: 4096,
      vocab_size: 50272,
      do_layer_norm_before: true,
      activation_function: 'relu',
      enable_bias: true,
      layer_norm_elementwise_affine: true,
    },
    'opt-6.7b/config.json',
  );

describe('weak-column counts', () => {
  it('LLaMA-7B at target_bit 3.01 and 3.1 (paper: 6/2/6 and 54/20/54)', () => {
    const at = (t: number) => Object.fromEntries(weakCounts(preset('llama-7b'), 3, { targetBit: t }));
    expect(at(3.01)).toEqual({
      'self_attn.q_proj': 6,
      'self_attn.k_proj': 6,
      'self_attn.v_proj': 6,
      'self_attn.o_proj': 6,
      'mlp.gate_proj': 2,
      'mlp.up_proj': 2,
      'mlp.down_proj': 6,
    });
    expect(at(3.1)).toEqual({
      'self_attn.q_proj': 54,
      'self_attn.k_proj': 54,
      'self_attn.v_proj': 54,
      'self_attn.o_proj': 54,
      'mlp.gate_proj': 20,
      'mlp.up_proj': 20,
      'mlp.down_proj': 54,
    });
  });

  it('OPT-6.7B at target_bit 3.1: L = 6, MLP ratio 0.25 (4096 r = 63.0 -> 64; fc1 15.75 -> 16; fc2 63.0 -> 64)', () => {
    expect(Object.fromEntries(weakCounts(opt67b(), 3, { targetBit: 3.1 }))).toEqual({
      'self_attn.q_proj': 64,
      'self_attn.k_proj': 64,
      'self_attn.v_proj': 64,
      'self_attn.out_proj': 64,
      fc1: 16,
      fc2: 64,
    });
  });

  it('TinyStories-656K at target_bit 3.1 and 4.1 gives 2 in every layer (golden table)', () => {
    const config = parseConfig(
      JSON.parse(fs.readFileSync(path.join(tinyStoriesDir, 'config.json'), 'utf8')),
      'config.json',
    );
    for (const [b, t] of [
      [3, 3.1],
      [4, 4.1],
    ]) {
      expect([...weakCounts(config, b, { targetBit: t }).values()]).toEqual([2, 2, 2, 2, 2, 2, 2]);
    }
    expect([...weakCounts(config, 3, { targetRank: 8 }).values()]).toEqual([8, 8, 8, 8, 8, 8, 8]);
    expect([...weakCounts(config, 3, null).values()]).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });

  it('rounds half to even like Python', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 2, 3]);
  });
});
