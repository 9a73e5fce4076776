/**
 * Shared helpers of the GPU tests: the process's device (llvmpipe through Dawn's OpenGL ES backend on machines
 * without a GPU; src/gpu/device.ts sets the environment), and host <-> device copies. No adapter fails the
 * tests with the packages to install: they are never skipped.
 */
import { afterAll, beforeAll } from 'vitest';
import type { GpuArray, GpuContext } from '../../src/gpu/array.js';
import { closeGpu, type Gpu, getGpu } from '../../src/gpu/device.js';

/** Opens the device before the file's tests and closes it after; returns a getter for it. */
export function useGpu(): () => Gpu {
  let gpu: Gpu | null = null;
  beforeAll(async () => {
    gpu = await getGpu();
  });
  afterAll(async () => {
    await closeGpu();
  });
  return () => {
    if (gpu === null) throw new Error('useGpu: the device is opened in beforeAll');
    return gpu;
  };
}

/** Host f32 (or f64, rounded) values on the device. */
export function up(ctx: GpuContext, data: ArrayLike<number>): GpuArray {
  return ctx.upload(data instanceof Float32Array ? data : Float32Array.from(data));
}

/** A device array's values on the host. */
export function down(arr: GpuArray): Promise<Float32Array> {
  return arr.ctx.read(arr);
}
