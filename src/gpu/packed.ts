// placeholder until branch g-packed lands (merge takes theirs)
import type { PackedWeight } from '../native/packed.js';
import type { GpuArray, GpuContext } from './array.js';

export interface GpuPackedWeight {
  rows: number;
  cols: number;
  weakIdx: Int32Array;
  weak: GpuArray;
}
export function packedToGpu(_ctx: GpuContext, _w: PackedWeight): GpuPackedWeight {
  throw new Error('not yet');
}
export function releasePacked(_w: GpuPackedWeight): void {}
