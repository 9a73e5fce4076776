/**
 * Loads a Hugging Face checkpoint directory (config.json + model.safetensors or a sharded index) into a
 * CausalLM. Every tensor the config implies is checked for presence and shape before any is read; each
 * is then read once, straight into its own buffer (fp16/bf16 widened to fp32; f64 for gradient checks).
 */
import { checkTensors, expectedTensorShapes, readConfig, resolveTensorName, type ModelConfig } from '../io/hf-config.js';
import { openCheckpoint } from '../io/safetensors.js';
import { Tensor, type DType } from '../tensor/tensor.js';
import { LlamaModel } from './llama.js';
import type { CausalLM } from './model.js';
import { OptModel } from './opt.js';

export interface LoadOptions {
  dtype?: DType;
}

export function buildModel(config: ModelConfig, weights: Map<string, Tensor>): CausalLM {
  return config.family === 'llama' ? new LlamaModel(config, weights) : new OptModel(config, weights);
}

/** Reads every expected tensor by its canonical name (aliases such as `decoder.*` resolved). */
export function loadWeights(dir: string, config: ModelConfig, options: LoadOptions = {}): Map<string, Tensor> {
  const ckpt = openCheckpoint(dir);
  try {
    const available = new Set(ckpt.names());
    checkTensors(ckpt.path, config, ckpt);
    const weights = new Map<string, Tensor>();
    for (const [canonical, shape] of expectedTensorShapes(config)) {
      // A tied model reuses the embedding as lm_head, even when the file also stores a copy.
      if (canonical === 'lm_head.weight' && config.tieWordEmbeddings) continue;
      const stored = resolveTensorName(available, canonical);
      if (stored === undefined) continue; // optional; checkTensors vetted the required ones
      const f32 = ckpt.readF32(stored);
      weights.set(canonical, new Tensor(options.dtype === 'f64' ? Float64Array.from(f32) : f32, shape));
    }
    return weights;
  } finally {
    ckpt.close();
  }
}

export function loadModel(dir: string, options: LoadOptions = {}): CausalLM {
  const config = readConfig(dir);
  return buildModel(config, loadWeights(dir, config, options));
}
