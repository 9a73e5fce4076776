/**
 * Micro-batches of examples, right-padded: ids and targets [batch, seq] row-major, seq the longest
 * example of the micro-batch, padding ids = padId and padding targets = IGNORE_INDEX.
 *
 * BatchStream walks the training examples epoch after epoch. Each epoch's order is a Fisher-Yates
 * shuffle from Rng(epochSeed(seed, epoch)), a pure function of (seed, epoch), so the stream's whole
 * state is {epoch, position} and a resumed run sees exactly the batches an uninterrupted one would.
 * groupByLength (HF Trainer's LengthGroupedSampler): the shuffled order is cut into mega-batches of
 * MEGA_BATCH micro-batches, each sorted by length, longest first (ties in shuffled order), which cuts
 * padding while keeping the epoch random at the mega-batch scale. The last micro-batch of an epoch may
 * be smaller than microBatch; every example is seen once per epoch.
 */
import { IGNORE_INDEX } from '../autograd/ops/loss.js';
import { Rng } from '../util/rng.js';
import type { Example } from './example.js';
import { shuffledIndices } from './dataset.js';
import { OptionError } from '../errors.js';

export interface Batch {
  /** [batch, seq] */
  ids: Int32Array;
  /** [batch, seq]; IGNORE_INDEX on padding */
  targets: Int32Array;
  batch: number;
  seq: number;
  /** targets that are not IGNORE_INDEX: the cross-entropy's denominator */
  lossTokens: number;
}

export interface BatchStreamOptions {
  microBatch: number;
  seed: number;
  groupByLength: boolean;
  padId: number;
}

export interface BatchStreamState {
  /** Completed epochs. */
  epoch: number;
  /** Examples of the current epoch already served. */
  position: number;
}

/** Micro-batches per length-sorted mega-batch (HF's LengthGroupedSampler default mega_batch_mult). */
export const MEGA_BATCH = 50;

/** Right-pads `examples` into one batch. */
export function collate(examples: Example[], padId: number): Batch {
  const batch = examples.length;
  const seq = Math.max(...examples.map((e) => e.ids.length));
  const ids = new Int32Array(batch * seq).fill(padId);
  const targets = new Int32Array(batch * seq).fill(IGNORE_INDEX);
  let lossTokens = 0;
  examples.forEach((e, b) => {
    ids.set(e.ids, b * seq);
    targets.set(e.targets, b * seq);
    for (const t of e.targets) if (t !== IGNORE_INDEX) lossTokens++;
  });
  return { ids, targets, batch, seq, lossTokens };
}

/** Validation examples in their order, microBatch at a time (the last batch may be smaller). */
export function validationBatches(examples: Example[], microBatch: number, padId: number): Batch[] {
  checkMicroBatch(microBatch);
  const batches: Batch[] = [];
  for (let i = 0; i < examples.length; i += microBatch) batches.push(collate(examples.slice(i, i + microBatch), padId));
  return batches;
}

function checkMicroBatch(microBatch: number): void {
  if (!Number.isInteger(microBatch) || microBatch < 1)
    throw new RangeError(`batches: microBatch must be an integer >= 1, got ${microBatch}`);
}

/** A distinct 32-bit seed per epoch (golden-ratio stride, so nearby seeds and epochs do not collide). */
function epochSeed(seed: number, epoch: number): number {
  return (seed + Math.imul(epoch + 1, 0x9e3779b9)) >>> 0;
}

export class BatchStream {
  private readonly examples: Example[];
  private readonly options: BatchStreamOptions;
  private order: number[] = [];
  private current: BatchStreamState = { epoch: 0, position: 0 };

  constructor(examples: Example[], options: BatchStreamOptions) {
    if (examples.length === 0)
      throw new OptionError('data', 'no training examples (the data file and data.validation leave none)');
    checkMicroBatch(options.microBatch);
    this.examples = examples;
    this.options = { ...options };
    this.restore({ epoch: 0, position: 0 });
  }

  /** Completed epochs. */
  get epoch(): number {
    return this.current.epoch;
  }

  state(): BatchStreamState {
    return { ...this.current };
  }

  restore(state: BatchStreamState): void {
    const { epoch, position } = state;
    if (
      !Number.isInteger(epoch) ||
      epoch < 0 ||
      !Number.isInteger(position) ||
      position < 0 ||
      position >= this.examples.length
    ) {
      throw new RangeError(
        `BatchStream: cannot restore ${JSON.stringify(state)} over ${this.examples.length} examples`,
      );
    }
    this.order = this.epochOrder(epoch);
    this.current = { epoch, position };
  }

  next(): Batch {
    const { epoch, position } = this.current;
    const end = Math.min(position + this.options.microBatch, this.order.length);
    const batch = collate(
      this.order.slice(position, end).map((i) => this.examples[i]),
      this.options.padId,
    );
    if (end === this.order.length) this.restore({ epoch: epoch + 1, position: 0 });
    else this.current = { epoch, position: end };
    return batch;
  }

  private epochOrder(epoch: number): number[] {
    const order = shuffledIndices(this.examples.length, new Rng(epochSeed(this.options.seed, epoch)));
    if (!this.options.groupByLength) return order;
    const mega = MEGA_BATCH * this.options.microBatch;
    const len = (i: number) => this.examples[i].ids.length;
    const grouped: number[] = [];
    for (let s = 0; s < order.length; s += mega) {
      const chunk = order.slice(s, s + mega);
      // Array.prototype.sort is stable, so ties keep their shuffled order
      grouped.push(...chunk.sort((a, b) => len(b) - len(a)));
    }
    return grouped;
  }
}
