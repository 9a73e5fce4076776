/**
 * The Qwen2 family spec (Qwen2, Qwen2.5): the Llama architecture (same forward pass, names, shapes and
 * quantization description, ./llama.ts) with its own config rules: q/k/v always carry a bias and o_proj and the
 * MLP never do (Qwen2Config has no attention_bias / mlp_bias keys). Sliding-window attention applies only with
 * use_sliding_window, to the layers from max_window_layers on (Qwen2Config); when some layer uses it, the usable
 * length is capped at sliding_window (./llama.ts says why).
 */
import { SIZE_LIMITS as MAX, type ConfigFields } from './config-fields.js';
import { llamaFamily, parseLlamaFields, windowOf, type LlamaConfig } from './llama.js';
import type { FamilySpec } from './spec.js';

/** The window of Qwen2-style configs (Qwen2Config / Qwen3Config defaults: use_sliding_window false, max_window_layers 28, sliding_window 4096). */
export function qwenWindow(f: ConfigFields): number | null {
  if (!f.bool('use_sliding_window', false)) return null;
  const windowed = f.size('max_window_layers', MAX.layers, 28) < f.size('num_hidden_layers', MAX.layers);
  if (!windowed) return null;
  return f.value('sliding_window') === undefined ? 4096 : windowOf(f);
}

function parseQwen2(f: ConfigFields): LlamaConfig {
  return parseLlamaFields(f, 'qwen2', {
    bias: { attention: true, attentionOut: false, mlp: false },
    window: qwenWindow(f),
    qkNorm: false,
  });
}

export const qwen2Family: FamilySpec<LlamaConfig> = {
  ...llamaFamily,
  modelTypes: ['qwen2'],
  architectures: { Qwen2ForCausalLM: 'qwen2' },
  parseConfig: parseQwen2,
};
