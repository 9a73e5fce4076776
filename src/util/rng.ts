/**
 * A small seeded PRNG (SplitFast mix of a 32-bit counter, "mulberry32"): reproducible sampling, dropout
 * masks and data shuffling from one integer seed. Its state is one number, so it checkpoints trivially.
 *
 * The generator is counter-based: draw i after state s is mix32(s + (i + 1) GAMMA mod 2^32), so a block of n
 * draws can be computed anywhere from s alone (the GPU draws dropout masks this way: src/gpu/elementwise.ts)
 * and `skip(n)` moves past them.
 */

/** The counter's increment (Weyl sequence step). */
export const GAMMA = 0x6d2b79f5;

/** The output mix of one counter value, as an unsigned 32-bit integer. */
export function mix32(counter: number): number {
  let t = counter >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}

/** The counter of draw i (0-based) after state s. */
export function counterOf(state: number, i: number): number {
  return (state + Math.imul(i + 1, GAMMA)) >>> 0;
}

export class Rng {
  constructor(public state: number) {
    this.state = state >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = counterOf(this.state, 0);
    return mix32(this.state) / 4294967296;
  }

  /** Moves past n draws (as n calls of next() would) and returns the state before them. */
  skip(n: number): number {
    const before = this.state;
    this.state = counterOf(before, n - 1);
    return before;
  }
}
