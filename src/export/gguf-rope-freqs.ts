/**
 * llama.cpp's `rope_freqs.weight` for Llama 3.x's `rope_scaling` `llama3`: one F32 factor per rotary pair
 * (head_dim / 2), by which llama.cpp divides that pair's base frequency theta^(-2i/D) (ggml's rope freq_factors).
 * Computed as convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors does, each step in fp32 as its torch
 * float32 tensors are: with wavelength w = 2π / freq_i, the factor is 1 where w < N / high_freq_factor, `factor`
 * where w > N / low_freq_factor, and 1 / ((1 - s) / factor + s) between, s = (N / w - lo) / (hi - lo); N is
 * rope_scaling's original_max_position_embeddings (the converter reads a top-level key of that name and falls
 * back to 8192, which is the value every Llama 3.1 / 3.2 config gives there).
 */
import type { RopeScaling } from '../autograd/ops/rope-frequencies.js';

/** The head_dim / 2 frequency factors of llama3 scaling `s` for RoPE base `theta`. */
export function llama3RopeFactors(
  headDim: number,
  theta: number,
  s: Extract<RopeScaling, { type: 'llama3' }>,
): Float32Array {
  const r = Math.fround;
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  return Float32Array.from({ length: headDim / 2 }, (_, i) => {
    const freq = r(1 / r(r(theta) ** r((2 * i) / headDim)));
    const wavelen = r(r(2 * Math.PI) / freq);
    if (wavelen < highFreqWavelen) return 1;
    if (wavelen > lowFreqWavelen) return s.factor;
    const smooth = r(r(r(s.originalMaxPositions / wavelen) - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor));
    return r(1 / r(r(r(1 - smooth) / s.factor) + smooth));
  });
}
