/**
 * The Qwen2 family spec: the Llama architecture (same forward pass, names, shapes and quantization
 * description, ./llama.ts) with its own config rules: q/k/v always carry a bias and o_proj and the MLP never do
 * (Qwen2Config has no attention_bias / mlp_bias keys), and sliding-window attention (use_sliding_window) is
 * refused rather than run as full attention.
 */
import type { ConfigFields } from './config-fields.js';
import { llamaFamily, parseLlamaFields, type LlamaConfig } from './llama.js';
import type { FamilySpec } from './spec.js';

function parseQwen2(f: ConfigFields): LlamaConfig {
  if (f.bool('use_sliding_window', false)) f.fail('use_sliding_window', 'sliding-window attention is not supported');
  return parseLlamaFields(f, 'qwen2', { attention: true, attentionOut: false, mlp: false }, (declared) => declared);
}

export const qwen2Family: FamilySpec<LlamaConfig> = {
  ...llamaFamily,
  modelTypes: ['qwen2'],
  architectures: { Qwen2ForCausalLM: 'qwen2' },
  parseConfig: parseQwen2,
};
