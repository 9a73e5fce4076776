/**
 * RoPE's inverse frequencies, plain and under the scalings of config.json's `rope_scaling` that change only the
 * frequencies (no attention factor on cos/sin), computed as transformers' modeling_rope_utils does:
 * - default: invFreq[i] = 1 / theta^(2i/D), i < D/2.
 * - linear (factor f): invFreq / f, i.e. positions divided by f.
 * - dynamic NTK (factor f, max_position_embeddings M): for a sequence of L > M positions, theta is replaced by
 *   theta * (f L / M - (f - 1))^(D / (D - 2)); L <= M is plain. L is the length the forward reaches (its last
 *   position + 1), as HF's dynamic_rope_update takes it. HF's module keeps the frequencies of the longest L it has
 *   seen until a forward shorter than M resets them; computing them from each forward's own L is the same for a
 *   freshly loaded model and under the KV cache (generation's L only grows), and unlike HF does not depend on
 *   what ran before.
 * - llama3 (factor f, low/high_freq_factor lo/hi, original_max_position_embeddings N): wavelengths 2π / invFreq
 *   above N / lo are divided by f, those below N / hi kept, those between interpolated with
 *   s = (N / wavelen - lo) / (hi - lo): (1 - s) invFreq / f + s invFreq.
 * Each step is rounded to fp32 for an f32 table (HF computes them in fp32 tensors); an f64 table is exact.
 */

/** What `rope_scaling` says, normalised (src/models/families/rope-scaling.ts parses it). */
export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number; maxPositionEmbeddings: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export const PLAIN_ROPE: RopeScaling = { type: 'default' };

/** The D/2 inverse frequencies for a forward reaching `length` positions (only dynamic depends on it). */
export function ropeInvFreq(
  headDim: number,
  theta: number,
  scaling: RopeScaling,
  length: number,
  dtype: 'f32' | 'f64',
): Float64Array {
  const r = dtype === 'f32' ? Math.fround : (v: number) => v;
  const base = scaling.type === 'dynamic' ? dynamicTheta(theta, headDim, scaling, length, r) : theta;
  const invFreq = Float64Array.from({ length: headDim / 2 }, (_, i) => r(1 / r(base ** r((2 * i) / headDim))));
  if (scaling.type === 'linear') return invFreq.map((v) => r(v / scaling.factor));
  if (scaling.type === 'llama3') return invFreq.map((v) => llama3InvFreq(v, scaling, r));
  return invFreq;
}

/** Dynamic NTK's theta for `length` positions: plain up to max_position_embeddings. */
function dynamicTheta(
  theta: number,
  headDim: number,
  s: Extract<RopeScaling, { type: 'dynamic' }>,
  length: number,
  r: (v: number) => number,
): number {
  const L = Math.max(length, s.maxPositionEmbeddings);
  const stretch = r(r(r(s.factor * L) / s.maxPositionEmbeddings) - (s.factor - 1));
  return r(theta * r(stretch ** (headDim / (headDim - 2))));
}

/** One frequency under llama3 scaling (HF's _compute_llama3_parameters). */
function llama3InvFreq(invFreq: number, s: Extract<RopeScaling, { type: 'llama3' }>, r: (v: number) => number): number {
  const wavelen = r((2 * Math.PI) / invFreq);
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  if (wavelen > lowFreqWavelen) return r(invFreq / s.factor);
  if (wavelen < highFreqWavelen) return invFreq;
  const smooth = r(r(r(s.originalMaxPositions / wavelen) - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor));
  return r(r(r(r(1 - smooth) * invFreq) / s.factor) + r(smooth * invFreq));
}
