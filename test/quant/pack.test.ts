/**
 * From quantizer results to the packed layout: the packed weight dequantizes to exactly the quantizer's
 * Ŵ (codes, scales and weak columns carried over bit for bit), for every combination of per-row / grouped
 * parameters and input-order / reordered (act-order, OWQ) columns, at aligned and unaligned in_features;
 * weak positions hold the zero point; RTN's shorter last group is the reference quantizer on that slice.
 */
import { describe, expect, it } from 'vitest';
import { dequantize, packedGroups, unpackCodes, validatePacked } from '../../src/native/packed.js';
import { owq } from '../../src/quant/owq.js';
import { toPacked } from '../../src/quant/pack.js';
import type { QuantizedColumns } from '../../src/quant/quantized.js';
import { refFakeQuantize, refFindParams } from '../../src/quant/quantizer-ref.js';
import { rtn } from '../../src/quant/rtn.js';
import { Rng } from '../../src/util/rng.js';

const rows = 13;
const cols = 64;

function problem(seed: number, cols: number) {
  const rng = new Rng(seed);
  const w = Float32Array.from({ length: rows * cols }, () => rng.next() * 2 - 1);
  // H = X^T X / T + a few heavy columns, so the sensitivity ranking is not trivial
  const t = 96;
  const x = Float32Array.from({ length: t * cols }, (_, i) => (rng.next() - 0.5) * (i % cols < 3 ? 8 : 1));
  const h = new Float32Array(cols * cols);
  for (let i = 0; i < cols; i++)
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < t; k++) s += x[k * cols + i] * x[k * cols + j];
      h[i * cols + j] = (2 * s) / t;
    }
  return { w, h };
}

/** The packed weight of q dequantizes to q's Ŵ bit for bit; weak positions hold their group's zero point. */
function expectPackedExact(q: QuantizedColumns, name: string): void {
  const { rows, cols } = q;
  const p = toPacked(q);
  validatePacked(p, name);
  expect(p.perm !== null).toBe(q.groupSize > 0 && q.order !== null);
  expect(Array.from(p.weakIdx)).toEqual(Array.from(q.order?.subarray(q.nQuant) ?? []).sort((a, b) => a - b));
  expect(Array.from(dequantize(p))).toEqual(Array.from(q.dequantized));
  const codes = unpackCodes(p.qweight, rows, cols, p.bits);
  const packedCol = (j: number) => (p.perm === null ? j : p.perm.indexOf(j));
  for (const j of p.weakIdx) {
    for (let r = 0; r < rows; r++) {
      const k = packedCol(j);
      expect(codes[r * cols + k]).toBe(p.zeros[r * packedGroups(cols, p.groupSize) + Math.floor(k / p.groupSize)]);
    }
  }
}

describe('toPacked', () => {
  const { w, h } = problem(7, cols);
  const cases = [
    { name: 'RTN per row', q: () => rtn(w, rows, cols, { bits: 4, groupSize: 0 }) },
    { name: 'RTN groups of 16, 3-bit', q: () => rtn(w, rows, cols, { bits: 3, groupSize: 16 }) },
    {
      name: 'GPTQ act-order per row',
      q: () => owq(w, h, rows, cols, { bits: 4, nOut: 0, tuning: 'minmax', groupSize: 0, actOrder: true }),
    },
    {
      name: 'GPTQ act-order groups of 16 (perm)',
      q: () => owq(w, h, rows, cols, { bits: 3, nOut: 0, tuning: 'minmax', groupSize: 16, actOrder: true }),
    },
    {
      name: 'OWQ 4 weak columns per row',
      q: () => owq(w, h, rows, cols, { bits: 3, nOut: 4, tuning: 'mse', groupSize: 0, actOrder: false }),
    },
    {
      name: 'OWQ 6 weak columns, groups of 8 (perm)',
      q: () => owq(w, h, rows, cols, { bits: 4, nOut: 6, tuning: 'mse', groupSize: 8, actOrder: false }),
    },
    {
      name: 'OWQ 2 weak columns, act-order, 2-bit',
      q: () => owq(w, h, rows, cols, { bits: 2, nOut: 2, tuning: 'minmax', groupSize: 0, actOrder: true }),
    },
  ];
  for (const c of cases) {
    it(`${c.name}: dequantizes to the quantizer's Ŵ exactly`, () => expectPackedExact(c.q(), c.name));
  }
});

describe('toPacked at unaligned in_features (rows padded to whole blocks, the last group shorter)', () => {
  const odd = 43;
  const { w, h } = problem(8, odd);
  const cases = [
    { name: 'RTN per row, 3-bit', q: () => rtn(w, rows, odd, { bits: 3, groupSize: 0 }) },
    { name: 'RTN groups of 16 (16, 16, 11), 4-bit', q: () => rtn(w, rows, odd, { bits: 4, groupSize: 16 }) },
    { name: 'RTN groups of 64 (one group), 2-bit', q: () => rtn(w, rows, odd, { bits: 2, groupSize: 64 }) },
    {
      name: 'GPTQ act-order groups of 10 (perm)',
      q: () => owq(w, h, rows, odd, { bits: 3, nOut: 0, tuning: 'minmax', groupSize: 10, actOrder: true }),
    },
    {
      name: 'OWQ 3 weak columns per row',
      q: () => owq(w, h, rows, odd, { bits: 4, nOut: 3, tuning: 'mse', groupSize: 0, actOrder: false }),
    },
    {
      name: 'OWQ 4 weak columns, groups of 8 (perm)',
      q: () => owq(w, h, rows, odd, { bits: 3, nOut: 4, tuning: 'mse', groupSize: 8, actOrder: false }),
    },
  ];
  for (const c of cases) {
    it(`${c.name}: dequantizes to the quantizer's Ŵ exactly`, () => expectPackedExact(c.q(), c.name));
  }

  it('RTN groups are the reference quantizer on each slice w[:, g*G : min((g+1)*G, K)]', () => {
    const q = rtn(w, rows, odd, { bits: 3, groupSize: 16 });
    expect(q.nGroups).toBe(3);
    for (const [c0, c1] of [
      [0, 16],
      [16, 32],
      [32, odd],
    ]) {
      const slice = new Float32Array(rows * (c1 - c0));
      for (let r = 0; r < rows; r++) slice.set(w.subarray(r * odd + c0, r * odd + c1), r * (c1 - c0));
      const p = refFindParams(slice, rows, c1 - c0, c1 - c0, { bits: 3, tuning: 'minmax' });
      const out = new Float32Array(rows * (c1 - c0));
      refFakeQuantize(slice, rows, c1 - c0, p, 3, out);
      for (let r = 0; r < rows; r++) {
        const got = q.dequantized.subarray(r * odd + c0, r * odd + c1);
        expect(Array.from(got), `row ${r}, columns ${c0}..${c1}`).toEqual(
          Array.from(out.subarray(r * (c1 - c0), (r + 1) * (c1 - c0))),
        );
      }
    }
  });
});
