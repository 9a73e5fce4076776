/**
 * The GWQ-style pieces (src/quant/gwq.ts) against plain definitions: the outlier count (round half to even), the
 * top-k selection against a stable descending sort (ties to the smaller index), the scores, the quantized layer
 * (outliers exact in fp16, their codes the zero point, the rest RTN's of W with the outliers at 0), its packed form
 * (CSR rows, valid, dequantizing to the same Ŵ bit for bit), and the recipe fields' checks.
 */
import { describe, expect, it } from 'vitest';
import { f16BitsToF32, f32ToF16Bits } from '../../src/io/dtype.js';
import { validatePacked } from '../../src/native/packed.js';
import { dequantize } from '../../src/native/packed-ref.js';
import { gwqQuantize, outlierCountOf, scoreOf, topScores } from '../../src/quant/gwq.js';
import { toPacked } from '../../src/quant/pack.js';
import { rtn } from '../../src/quant/rtn.js';
import { quantizeOptions } from '../../src/recipe/quantize-options.js';
import { rng } from '../kernels/helpers.js';

/** The first k of a stable descending sort by score, as sorted indices. */
function stableTopK(score: Float32Array, k: number): number[] {
  const order = Array.from(score.keys()).sort((a, b) => score[b] - score[a] || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

describe('outlier selection', () => {
  it('k = round half to even of rho N K', () => {
    expect(outlierCountOf(128, 128, 0.01)).toBe(164); // 163.84
    expect(outlierCountOf(64, 128, 0.01)).toBe(82); // 81.92
    expect(outlierCountOf(384, 128, 0.05)).toBe(2458); // 2457.6
    expect(outlierCountOf(1, 5, 0.5)).toBe(2); // 2.5 -> 2
    expect(outlierCountOf(1, 7, 0.5)).toBe(4); // 3.5 -> 4
    expect(outlierCountOf(10, 10, 0)).toBe(0);
  });

  it('the top k equal a stable descending sort, ties going to the smaller index', () => {
    const r = rng(7);
    for (const [n, levels, k] of [
      [1000, 0, 10],
      [1000, 7, 13], // few distinct values: ties at the boundary
      [50, 3, 50],
      [50, 3, 0],
      [333, 0, 333],
    ]) {
      const score = Float32Array.from({ length: n }, () => (levels === 0 ? r() : Math.floor(r() * levels)));
      expect(Array.from(topScores(score, k)), `n ${n}, ${levels} levels, k ${k}`).toEqual(stableTopK(score, k));
    }
  });

  it('scores: |mean| for grad and taylor, the sum itself for fisher', () => {
    expect(Array.from(scoreOf('grad', Float32Array.of(-3, 1, 0.5), 2))).toEqual([1.5, 0.5, 0.25]);
    expect(Array.from(scoreOf('taylor', Float32Array.of(-1, 2), 8))).toEqual([0.125, 0.25]);
    expect(Array.from(scoreOf('fisher', Float32Array.of(3, 1), 2))).toEqual([3, 1]);
  });
});

describe('the GWQ-style quantized layer (rtn)', () => {
  const [rows, cols] = [9, 43];
  const r = rng(3);
  const w = Float32Array.from({ length: rows * cols }, () => (r() - 0.5) * (r() < 0.05 ? 10 : 1));
  // the 5% largest |W| as outliers, plus most of row 4 (outliers crowd into rows)
  const index = new Set(stableTopK(w.map(Math.abs), 20));
  for (let c = 0; c < cols - 3; c++) index.add(4 * cols + c);
  const outliers = Int32Array.from([...index].sort((a, b) => a - b));
  const o = {
    bits: 3,
    groupSize: 16,
    quantizer: 'rtn' as const,
    hessian: null,
    percdamp: 0.01,
    tuning: 'minmax' as const,
  };
  const q = gwqQuantize(w, rows, cols, outliers, o);

  it('outliers keep fp16(W) exactly; the rest is RTN of W with the outliers at 0; their codes the zero point', () => {
    const rest = w.map((v, i) => (index.has(i) ? 0 : v));
    const plain = rtn(rest, rows, cols, o);
    for (let i = 0; i < rows * cols; i++) {
      if (index.has(i)) expect(q.dequantized[i]).toBe(f16BitsToF32(f32ToF16Bits(w[i])));
      else expect(q.dequantized[i]).toBe(plain.dequantized[i]);
      const zero = plain.zero[Math.floor(i / cols) * plain.nGroups + Math.floor((i % cols) / 16)];
      if (index.has(i)) expect(q.codes[i]).toBe(zero);
    }
    expect(q.scale).toEqual(plain.scale);
    expect(Array.from(q.outliers!.index)).toEqual(Array.from(outliers));
  });

  it('packs into CSR rows that validate and dequantize to the same Ŵ bit for bit', () => {
    const p = toPacked(q);
    validatePacked(p, 'test');
    const o = p.outliers!;
    for (let row = 0; row < rows; row++) {
      const inRow = Array.from(outliers).filter((i) => Math.floor(i / cols) === row);
      expect(Array.from(o.colIdx.subarray(o.rowPtr[row], o.rowPtr[row + 1])), `row ${row}`).toEqual(
        inRow.map((i) => i % cols),
      );
    }
    expect(o.rowPtr[rows]).toBe(outliers.length);
    expect(dequantize(p)).toEqual(q.dequantized);
  });
});

describe('the gwq recipe fields', () => {
  it('defaults, and each field refused outside the method it belongs to', () => {
    const g = quantizeOptions({ method: 'gwq', wbits: 3 });
    expect(g.gwq).toEqual({ score: 'grad', quantizer: 'rtn', outlierRatio: 0.01 });
    expect([g.sensitivity, g.gradSamples]).toEqual(['hessian', 1]);
    expect(quantizeOptions({ method: 'owq', sensitivity: 'fisher', grad_samples: 8 }).gradSamples).toBe(8);
    for (const [section, field] of [
      [{ method: 'owq', outlier_ratio: 0.01 }, 'outlier_ratio'],
      [{ method: 'rtn', gwq_score: 'taylor' }, 'gwq_score'],
      [{ method: 'gptq', gwq_quantizer: 'gptq' }, 'gwq_quantizer'],
      [{ method: 'gwq', sensitivity: 'fisher' }, 'sensitivity'],
      [{ method: 'owq', grad_samples: 2 }, 'grad_samples'],
      [{ method: 'gwq', outlier_ratio: 1 }, 'outlier_ratio'],
      [{ method: 'gwq', gwq_score: 'hessian' }, 'gwq_score'],
    ] as const) {
      expect(() => quantizeOptions(section), JSON.stringify(section)).toThrow(field);
    }
  });
});
