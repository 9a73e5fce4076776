/**
 * Speed contracts, measured in one process: the engine's gemm (TS -> N-API -> cblas_sgemm on the
 * caller's buffers) against cblas_sgemm timed inside C++, and causal attention at GPT-2-small shape.
 * The thresholds leave room for a noisy shared CI machine; the measured figures are printed.
 */
import { describe, expect, it } from 'vitest';
import type { AttentionDims, GemmDims } from '../../src/native/types.js';
import { native, rand32 } from './helpers.js';

/** The engine must reach this fraction of a direct cblas_sgemm call (the target is 0.9; see the log). */
const GEMM_RATIO_FLOOR = 0.8;
/** B=1, T=512, H=12, D=64 forward + backward should take tens of ms; fail only if it is off by 10x. */
const ATTENTION_MAX_SECONDS = 0.5;

function secondsPerCall(iters: number, f: () => void): number {
  f(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) f();
  return (performance.now() - t0) / 1000 / iters;
}

describe('performance', () => {
  it('gemm 512x768x3072 reaches the direct cblas_sgemm speed', () => {
    const [m, n, k] = [512, 768, 3072];
    const a = rand32(m * k, 1);
    const b = rand32(k * n, 2);
    const c = new Float32Array(m * n);
    const d: GemmDims = { batch: 1, m, n, k, transA: false, transB: false, alpha: 1, beta: 0, strideA: 0, strideB: 0, strideC: 0 };
    // interleave rounds so that machine noise hits both sides alike; keep each side's best round
    let direct = Infinity;
    let engine = Infinity;
    for (let round = 0; round < 4; round++) {
      direct = Math.min(direct, native.benchSgemmDirect(m, n, k, 5));
      engine = Math.min(engine, secondsPerCall(5, () => native.gemm(a, b, c, d)));
    }
    const gflops = (s: number) => ((2 * m * n * k) / s / 1e9).toFixed(1);
    console.log(`gemm ${m}x${n}x${k}: engine ${(engine * 1e3).toFixed(2)} ms (${gflops(engine)} GFLOP/s), direct ${(direct * 1e3).toFixed(2)} ms (${gflops(direct)} GFLOP/s), ratio ${(direct / engine).toFixed(3)}, threads ${native.threads()}, ${native.cpuPath()}`);
    expect(direct / engine).toBeGreaterThanOrEqual(GEMM_RATIO_FLOOR);
  });

  it('attention B=1 T=512 H=12 D=64 takes tens of ms', () => {
    const d: AttentionDims = { batch: 1, tq: 512, tk: 512, heads: 12, kvHeads: 12, headDim: 64, scale: 1 / 8 };
    const n = 512 * 12 * 64;
    const [q, k, v, dout] = [1, 2, 3, 4].map((s) => rand32(n, s));
    const out = new Float32Array(n);
    const probs = new Float32Array(12 * 512 * 512);
    const [dq, dk, dv] = [0, 1, 2].map(() => new Float32Array(n));
    const fwdNoProbs = secondsPerCall(5, () => native.attentionForward(q, k, v, out, null, d));
    const fwd = secondsPerCall(5, () => native.attentionForward(q, k, v, out, probs, d));
    const bwd = secondsPerCall(5, () => native.attentionBackward(q, k, v, probs, dout, dq, dk, dv, d));
    console.log(`attention B=1 T=512 H=12 D=64: forward ${(fwdNoProbs * 1e3).toFixed(1)} ms (probs kept: ${(fwd * 1e3).toFixed(1)} ms), backward ${(bwd * 1e3).toFixed(1)} ms`);
    expect(fwd + bwd).toBeLessThan(ATTENTION_MAX_SECONDS);
  });
});
