/** allocOutput: uninitialized host fp32 storage of its own, zeroed storage for float64. */
import { describe, expect, it } from 'vitest';
import { allocOutput } from '../../src/autograd/alloc.js';

describe('allocOutput', () => {
  it('gives fp32 storage of n elements over an ArrayBuffer of its own (not the Buffer pool)', () => {
    for (const n of [0, 1, 3, 127, 1025]) {
      const out = allocOutput(new Float32Array(1), n);
      expect(out).toBeInstanceOf(Float32Array);
      expect(out.length).toBe(n);
      expect(out.byteOffset).toBe(0);
      expect(out.buffer.byteLength).toBe(4 * n);
    }
  });

  it('gives zeroed float64 storage (the reference path of gradient checks)', () => {
    const out = allocOutput(new Float64Array(1), 7);
    expect(out).toBeInstanceOf(Float64Array);
    expect(Array.from(out)).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });
});
