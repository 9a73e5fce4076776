/**
 * A small seeded PRNG (SplitFast mix of a 32-bit counter, "mulberry32"): reproducible sampling, dropout
 * masks and data shuffling from one integer seed. Its state is one number, so it checkpoints trivially.
 */
export class Rng {
  constructor(public state: number) {
    this.state = state >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
