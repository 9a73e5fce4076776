/**
 * Host <-> device transfers of f32 data. Uploads go through queue.writeBuffer: `mappedAtCreation` buffers of
 * tens of MiB crashed the process (SIGSEGV) on Dawn's OpenGL ES path. Read-back copies into a MAP_READ staging
 * buffer and awaits mapAsync: the only asynchronous step of the backend.
 */

/** The spec's GPUBufferUsage / GPUMapMode values (dawn.node does not put its globals on globalThis). */
export const Usage = {
  MAP_READ: 0x1,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
} as const;
const MAP_READ = 0x1;

/** Byte size of n f32 values, rounded up to 4 and at least 4 (WebGPU refuses empty bindings). */
function bytesOf(n: number): number {
  return Math.max(4, n * 4);
}

/** A storage buffer holding `data` (uploaded with queue.writeBuffer). */
export function uploadF32(device: GPUDevice, data: Float32Array, label = 'f32'): GPUBuffer {
  const buf = device.createBuffer({
    label,
    size: bytesOf(data.length),
    usage: Usage.STORAGE | Usage.COPY_DST | Usage.COPY_SRC,
  });
  if (data.length > 0) device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  return buf;
}

/** An uninitialized-by-the-host storage buffer of n f32 (WebGPU zero-fills new buffers). */
export function emptyF32(device: GPUDevice, n: number, label = 'f32'): GPUBuffer {
  return device.createBuffer({ label, size: bytesOf(n), usage: Usage.STORAGE | Usage.COPY_DST | Usage.COPY_SRC });
}

/** Copies the first `out.length` f32 of `src` back into `out`. */
export async function readF32(device: GPUDevice, src: GPUBuffer, out: Float32Array): Promise<void> {
  if (out.length === 0) return;
  const staging = device.createBuffer({ label: 'staging', size: out.byteLength, usage: MAP_READ | Usage.COPY_DST });
  try {
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, staging, 0, out.byteLength);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(MAP_READ);
    out.set(new Float32Array(staging.getMappedRange(), 0, out.length));
    staging.unmap();
  } finally {
    staging.destroy();
  }
}
