/**
 * The Qwen3 family spec: the Llama architecture (./llama.ts) with an RMSNorm over head_dim on every q and k head
 * before RoPE (self_attn.q_norm / k_norm, weights [head_dim]), head_dim 128 unless given (Qwen3Config), and
 * attention_bias putting a bias on q, k, v and o_proj alike (Qwen3Attention); the MLP has none. The head norms
 * are plain tensors of the checkpoint: the quantizers, which replace only the block linears, leave them as they
 * are. Sliding windows as in Qwen2 (./qwen2.ts).
 */
import type { ConfigFields } from './config-fields.js';
import { llamaFamily, parseLlamaFields, type LlamaConfig } from './llama.js';
import { qwenWindow } from './qwen2.js';
import type { FamilySpec } from './spec.js';

function parseQwen3(f: ConfigFields): LlamaConfig {
  const attention = f.bool('attention_bias', false);
  return parseLlamaFields(f, 'qwen3', {
    bias: { attention, attentionOut: attention, mlp: false },
    window: qwenWindow(f),
    qkNorm: true,
    headDim: 128,
  });
}

export const qwen3Family: FamilySpec<LlamaConfig> = {
  ...llamaFamily,
  modelTypes: ['qwen3'],
  architectures: { Qwen3ForCausalLM: 'qwen3' },
  parseConfig: parseQwen3,
};
