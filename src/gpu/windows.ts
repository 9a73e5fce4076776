/**
 * Arrays over the storage binding limit, bound in windows. One GpuArray is one buffer up to the adapter's
 * maxBufferSize (src/gpu/array.ts), but one binding may span only `ctx.bindingLimit` bytes (the adapter's
 * maxStorageBufferBindingSize: 128 MiB on llvmpipe, under the 512 MiB of a 7B model's lm_head on some GPUs). A
 * kernel that may see such an array splits its work into chunks and binds, per chunk, the part of each array the
 * chunk touches: a `Window` (an element range), dispatched once per chunk.
 *
 * The plan. A kernel's work is a box of `totals` (e.g. GEMM: batch, rows, columns, inner), split into chunks of
 * `counts`. An operand reaches, for a chunk at `lo` of `size`, the elements
 *   [base + Σ lo[d] stride[d],  + width + Σ (size[d] - 1) stride[d])
 * (a `Reach`: its element stride along each dimension of the box, 0 where the dimension does not move it, and the
 * width of one point of the box: 1 for an element, a row's length for a row). `planChunks` shrinks the counts
 * until every operand over the limit fits one window: per operand, the dimensions in decreasing stride, each
 * shrunk to the most that fits given the ones inside it, or to 1 before the next is tried (so rows are split before
 * the elements of a row). An operand that fits whole is bound whole and constrains nothing; arrays under the limit,
 * the common case, give one chunk: the kernels dispatch as they did before.
 *
 * Binding a window: WebGPU wants a binding's offset to be a multiple of minStorageBufferOffsetAlignment (256
 * bytes), so a window starts at its first element rounded down to that (a window's capacity is the limit less
 * that slack). The kernel reads an array through `NAME[o + global index]` with o, the array's *origin*, in its
 * uniform: minus the window's first element (u32 arithmetic wraps, so the sum is the index within the window), 0
 * for an array bound whole. The kernels keep their global indices; only the origin differs between chunks.
 *
 * Half storage (src/gpu/half.ts: 16-bit elements two to a u32 word, read as `NAME_at(o + global index)`) is planned
 * and bound in its own elements: 2 bytes each, so an aligned first element is a multiple of 128, even: a window
 * starts on a word, and element 2i of the window is the low half of its word i as in the whole array. Its binding
 * ends with the word holding its last element (capacity: the limit's words, two elements each, less the slack).
 */
import { OptionError } from '../errors.js';
import { bindingBytes, elementBytes, type GpuArray, type GpuContext } from './array.js';

/** Elements [start, start + count) of an array, bound on their own. */
export class Window {
  constructor(
    readonly array: GpuArray,
    readonly start: number,
    readonly count: number,
  ) {}

  /** The binding's first element: start rounded down to the offset alignment (an even element of half storage). */
  get first(): number {
    const align = alignElements(this.array);
    return Math.floor(this.start / align) * align;
  }

  /** The binding's offset in bytes (a multiple of minStorageBufferOffsetAlignment). */
  get offsetBytes(): number {
    return this.first * elementBytes(this.array.format);
  }

  /** The binding's size in bytes: from `first` to the end of the word holding the last element. */
  get bytes(): number {
    return bindingBytes(this.start + this.count, this.array.format) - this.offsetBytes;
  }
}

/** Elements of `arr` in one offset alignment (256 bytes: 64 f32, 128 halves). */
function alignElements(arr: GpuArray): number {
  return arr.ctx.device.limits.minStorageBufferOffsetAlignment / elementBytes(arr.format);
}

/** Where a chunk of the plan reads or writes an array (see the file's comment). */
export interface Reach {
  array: GpuArray;
  /** Element stride of the array along each dimension of the plan (0: the dimension does not move it). */
  strides: number[];
  /** Elements one point of the box spans (1 for an element, a row's length for a row). */
  width: number;
  /** The element at lo = 0 (0 unless given). */
  base?: number;
}

/** One chunk of a plan: its origin and size per dimension. */
export interface Chunk {
  lo: number[];
  size: number[];
}

const MiB = (bytes: number): string => (bytes < 2 ** 20 ? `${bytes} bytes` : `${(bytes / 2 ** 20).toFixed(1)} MiB`);

/** True when `arr` can be bound whole. */
export function fitsWhole(arr: GpuArray): boolean {
  return bindingBytes(arr.length, arr.format) <= arr.ctx.bindingLimit;
}

/**
 * Elements of `arr` a window always holds, wherever it starts: the limit's words less the slack of an aligned
 * start (alignment - 1 elements) and, for half storage, of an end inside a word (1 element).
 */
export function windowCapacity(arr: GpuArray): number {
  const perWord = 4 / elementBytes(arr.format);
  return Math.floor(arr.ctx.bindingLimit / 4) * perWord - (alignElements(arr) - 1) - (perWord - 1);
}

function extent(r: Reach, size: readonly number[]): number {
  return r.strides.reduce((acc, s, d) => acc + (size[d] - 1) * s, r.width);
}

/**
 * Chunk sizes per dimension, at most `caps` (e.g. the grid's limit), such that the window of every operand that
 * does not fit whole fits the binding limit. Throws an OptionError naming `kernel` when one point of the box
 * (an operand's `width`) is over the limit.
 */
export function planChunks(kernel: string, totals: readonly number[], reaches: readonly Reach[], caps?: number[]) {
  const counts = totals.map((t, d) => Math.max(1, Math.min(t, caps?.[d] ?? t)));
  for (const r of reaches) {
    if (fitsWhole(r.array)) continue;
    const cap = windowCapacity(r.array);
    const eb = elementBytes(r.array.format);
    if (r.width > cap) {
      throw new OptionError(
        '--device',
        `${kernel}: one unit of ${r.width} floats (${MiB(r.width * eb)}) of a ${MiB(r.array.length * eb)} array ` +
          `exceeds the GPU's storage binding limit of ${MiB(r.array.ctx.bindingLimit)}: use the CPU`,
      );
    }
    const order = r.strides.map((s, d) => ({ s, d })).filter((x) => x.s > 0);
    order.sort((a, b) => b.s - a.s);
    for (const { s, d } of order) {
      if (extent(r, counts) <= cap) break;
      const rest = extent(r, counts) - (counts[d] - 1) * s;
      counts[d] = rest <= cap ? Math.min(counts[d], Math.floor((cap - rest) / s) + 1) : 1;
    }
  }
  return counts;
}

/** The chunks of a box of `totals` in chunks of `counts`, row-major (the last dimension fastest). */
export function chunksOf(totals: readonly number[], counts: readonly number[]): Chunk[] {
  if (totals.some((t) => t === 0)) return [];
  const out: Chunk[] = [];
  const lo = totals.map(() => 0);
  for (;;) {
    out.push({ lo: [...lo], size: lo.map((l, d) => Math.min(counts[d], totals[d] - l)) });
    let d = totals.length - 1;
    for (; d >= 0; d--) {
      lo[d] += counts[d];
      if (lo[d] < totals[d]) break;
      lo[d] = 0;
    }
    if (d < 0) return out;
  }
}

/** What a chunk binds of an operand: the array whole when it fits, else the window of the chunk's reach. */
export function windowOf(r: Reach, c: Chunk): GpuArray | Window {
  if (fitsWhole(r.array)) return r.array;
  const start = r.strides.reduce((acc, s, d) => acc + c.lo[d] * s, r.base ?? 0);
  return new Window(r.array, start, Math.min(extent(r, c.size), r.array.length - start));
}

/** The origin of a bound array: NAME[origin + global index] is its element in the binding (u32 arithmetic). */
export function originOf(b: unknown): number {
  return b instanceof Window ? (2 ** 32 - b.first) % 2 ** 32 : 0;
}

/** The refusal of an array bound whole over the limit (a kernel that does not split it). */
export function overLimit(kernel: string, bytes: number, ctx: GpuContext): OptionError {
  return new OptionError(
    '--device',
    `${kernel}: a binding of ${MiB(bytes)} exceeds the GPU's storage binding limit of ${MiB(ctx.bindingLimit)} ` +
      '(this kernel binds the array whole): use a smaller batch or the CPU',
  );
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * Blocks of `m` rows for kernels that take a row count and index from 0 (the packed weight's kernels): each
 * array's rows [m0, m0 + mc) (`rowElems` floats a row) as a Window starting on an aligned element, so the
 * kernel reads it as an array of its own (origin 0). One block, the arrays whole, when every array fits;
 * else every array is cut into the same blocks. `run(m0, mc, bind)` dispatches a block.
 */
export function inRowBlocks(
  kernel: string,
  m: number,
  arrays: readonly { array: GpuArray; rowElems: number }[],
  run: (m0: number, mc: number, bind: (array: GpuArray) => GpuArray | Window) => void,
): void {
  if (arrays.every((a) => fitsWhole(a.array))) {
    run(0, m, (array) => array);
    return;
  }
  // every array is cut into the blocks (the kernel indexes each from 0), over the limit or not
  const split = arrays.filter((a) => a.rowElems > 0);
  const { ctx } = split[0].array;
  const align = ctx.device.limits.minStorageBufferOffsetAlignment / 4;
  // rows per block: a multiple of q so that every split array's block starts on an aligned element
  const q = split.reduce((acc, a) => {
    const need = align / gcd(align, a.rowElems);
    return (acc * need) / gcd(acc, need);
  }, 1);
  const most = Math.min(...split.map((a) => (fitsWhole(a.array) ? m : Math.floor(ctx.bindingLimit / 4 / a.rowElems))));
  const rows = Math.floor(most / q) * q;
  if (rows === 0) {
    throw new OptionError(
      '--device',
      `${kernel}: ${q} rows of ${Math.max(...split.map((a) => a.rowElems))} floats (a block that starts aligned) ` +
        `exceed the GPU's storage binding limit of ${MiB(ctx.bindingLimit)}: use a smaller batch or the CPU`,
    );
  }
  const rowsOf = new Map(split.map((a) => [a.array, a.rowElems]));
  for (let m0 = 0; m0 < m; m0 += rows) {
    const mc = Math.min(rows, m - m0);
    run(m0, mc, (array) => {
      const e = rowsOf.get(array);
      return e === undefined ? array : new Window(array, m0 * e, mc * e);
    });
  }
}
