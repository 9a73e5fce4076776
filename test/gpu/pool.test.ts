/**
 * The buffer pool (src/gpu/array.ts): size classes bound the slack and the number of buffers a run with varying
 * shapes creates; a pooled buffer handed out again reads as zeros where asked.
 */
import { describe, expect, it } from 'vitest';
import { bytesFor, poolBytes, release, scoped } from '../../src/gpu/array.js';
import { down, up, useGpu } from './helpers.js';

const gpu = useGpu();

describe('gpu buffer pool', () => {
  it('size classes: at least the request, multiples of 16, monotone, at most 25% slack past 4 KiB', () => {
    let prev = 0;
    for (let bytes = 16; bytes < 1 << 22; bytes += 16 * (1 + Math.floor(bytes / 997))) {
      const c = poolBytes(bytes);
      expect(c % 16, `${bytes}`).toBe(0);
      expect(c, `${bytes}`).toBeGreaterThanOrEqual(bytes);
      expect(c, `${bytes}`).toBeGreaterThanOrEqual(prev);
      if (bytes <= 4096) expect(c).toBe(bytes);
      else expect(c / bytes, `${bytes}`).toBeLessThanOrEqual(1.25);
      prev = c;
    }
  });

  it('arrays of 300 lengths between 10k and 20k floats create a handful of buffers, not 300', () => {
    const { ctx } = gpu();
    const created = ctx.stats.created;
    for (let i = 0; i < 300; i++) scoped(() => ctx.zeros(10_000 + ((i * 7919) % 10_000)));
    // classes of 40-80 kB: 40960, 49152, 57344, 65536, 81920
    expect(ctx.stats.created - created).toBeLessThanOrEqual(5);
  });

  it('a pooled buffer from a longer array reads as zeros through zeros(), and uploads read back exactly', async () => {
    const { ctx } = gpu();
    const long = up(
      ctx,
      Float32Array.from({ length: 5000 }, (_, i) => i + 1),
    );
    release(long);
    const short = ctx.zeros(4700); // the same class as 5000 floats: the released buffer
    expect(bytesFor(4700)).toBeLessThan(bytesFor(5000));
    expect(poolBytes(bytesFor(4700))).toBe(poolBytes(bytesFor(5000)));
    expect((await down(short)).every((v) => v === 0)).toBe(true);
    const data = Float32Array.from({ length: 4700 }, (_, i) => -i);
    release(short);
    expect(await down(up(ctx, data))).toEqual(data);
  });
});
