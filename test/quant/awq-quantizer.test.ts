/**
 * AWQ's quantizer (src/quant/awq-quantizer.ts) and clip search (src/quant/awq-clip.ts) on hand-made groups: the
 * range is the group's own [min, max], zero-point ties round half to even, a one-signed group's zero point is
 * clamped, the range floor is 1e-5; the clip search against a brute-force float64 reference of its formula.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { searchClip, sampleTokens } from '../../src/quant/awq-clip.js';
import { awqGroupParams, awqQuantize } from '../../src/quant/awq-quantizer.js';
import { rtn } from '../../src/quant/rtn.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { roundHalfEven } from '../../src/util/round.js';

const f = Math.fround;

describe("AWQ's quantizer", () => {
  it("takes the group's own range: an all-positive group keeps its minimum (GPTQ's min-max widens to 0)", () => {
    const w = Float32Array.from([0.5, 0.75, 1, 1.5]);
    const [s, z] = awqGroupParams(w, 0, 4, 15);
    expect(s).toBe(f(f(1.5 - 0.5) / 15));
    expect(z).toBe(0); // -round(0.5 / s) = -8, clamped to 0
    const awq = awqQuantize(w, 1, 4, { bits: 4, groupSize: 0 });
    const gptq = rtn(w, 1, 4, { bits: 4, groupSize: 0 });
    expect(awq.scale[0]).toBe(s);
    expect(gptq.scale[0]).toBe(f(1.5 / 15));
    // z = 0: codes round(x / s) clamped to [0, 15], so the top of the range is cut at 15 s = 1
    expect(Array.from(awq.dequantized)).toEqual(Array.from(w, (x) => f(s * Math.min(roundHalfEven(f(x / s)), 15))));
    expect(awq.dequantized[3]).toBe(f(15 * s));
  });

  it('a symmetric group at 3 bits: min / s = -3.5 exactly, and the zero point rounds half to even (4)', () => {
    const w = Float32Array.from([-0.7, 0.1, 0.7, -0.3]);
    const [s, z] = awqGroupParams(w, 0, 4, 7);
    expect(f(-0.7 / s)).toBeCloseTo(-3.5, 6);
    expect(f(f(-0.7) / s)).toBe(-3.5);
    expect(z).toBe(4);
  });

  it('a constant group uses the 1e-5 range floor, and (one-signed, zero point clamped to 0) is clipped to 7 s', () => {
    const w = new Float32Array(8).fill(0.25);
    const [s, z] = awqGroupParams(w, 0, 8, 7);
    expect([s, z]).toEqual([f(f(1e-5) / 7), 0]);
    const q = awqQuantize(w, 1, 8, { bits: 3, groupSize: 4 }).dequantized;
    expect(Array.from(q)).toEqual(Array(8).fill(f(7 * s)));
  });

  it('groups of G columns, the last shorter: each has its own parameters', () => {
    const w = Float32Array.from({ length: 10 }, (_, i) => (i < 4 ? i : 10 * i));
    const q = awqQuantize(w, 1, 10, { bits: 4, groupSize: 4 });
    expect(q.nGroups).toBe(3);
    for (let g = 0; g < 3; g++) {
      const seg = w.subarray(4 * g, Math.min(4 * g + 4, 10));
      const [s, z] = awqGroupParams(seg, 0, seg.length, 15);
      expect([q.scale[g], q.zero[g]]).toEqual([s, z]);
    }
  });
});

/** The clip search's formula, brute force: every (row, group, step) error as (x·q - x·w)² summed separately. */
function bruteClip(w: Float32Array, rows: number, cols: number, x: Float64Array, bits: number, g: number): number[] {
  const tokens = x.length / cols;
  const choice: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += g) {
      const seg = Array.from(w.subarray(r * cols + c0, r * cols + Math.min(c0 + g, cols)));
      const m0 = Math.max(...seg.map(Math.abs));
      let best = 1e9;
      let pick = 0;
      for (let i = 0; i < 10; i++) {
        const m = f(m0 * f(1 - i / 20));
        const clamped = Float32Array.from(seg, (v) => Math.min(Math.max(v, -m), m));
        const q = awqQuantize(clamped, 1, seg.length, { bits, groupSize: 0 }).dequantized;
        let err = 0;
        for (let t = 0; t < tokens; t++) {
          let a = 0;
          let b = 0;
          for (let c = 0; c < seg.length; c++) {
            a += x[t * cols + c0 + c] * q[c];
            b += x[t * cols + c0 + c] * seg[c];
          }
          err += (a - b) ** 2;
        }
        if (err / tokens < best) {
          best = err / tokens;
          pick = i;
        }
      }
      choice.push(pick);
    }
  }
  return choice;
}

describe("AWQ's clip search", () => {
  it('picks the shrink step of least partial-output error, as the brute-force formula does', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 3, max: 20 }),
        fc.constantFrom(3, 4),
        fc.integer(),
        (rows, cols, bits, seed) => {
          const rng = new Rng(seed >>> 0);
          const w = Float32Array.from({ length: rows * cols }, () => (rng.next() - 0.5) * (rng.next() < 0.1 ? 8 : 1));
          const tokens = 16;
          const x = Float64Array.from({ length: tokens * cols }, () => f(rng.next() * 2 - 1));
          const g = Math.max(2, Math.floor(cols / 2));
          const clip = searchClip('w', w, rows, cols, x, {
            bits,
            groupSize: g,
            grid: 20,
            maxShrink: 0.5,
            sampleTokens: 512,
          });
          expect(Array.from(clip.shrink)).toEqual(bruteClip(w, rows, cols, x, bits, g));
        },
      ),
      { numRuns: 40, seed: 7 },
    );
  });

  it('samples every (N // n)-th token across the recorded batches, in order', () => {
    const cols = 2;
    const batch = (from: number, n: number) =>
      new Tensor(
        Float32Array.from({ length: n * cols }, (_, i) => from + Math.floor(i / cols)),
        [n, cols],
      );
    const x = sampleTokens([batch(0, 7), batch(7, 7), batch(14, 6)], cols, 5); // 20 tokens, step 4
    expect(Array.from(x).filter((_, i) => i % cols === 0)).toEqual([0, 4, 8, 12, 16]);
    expect(sampleTokens([batch(0, 3)], cols, 8).length / cols).toBe(3); // fewer tokens than asked: all of them
  });
});
