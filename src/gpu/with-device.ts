/** Running a piece of work on the device a `--device` choice names (src/gpu/device.ts `selectDevice`). */
import type { GpuContext } from './array.js';
import { closeGpu, type DeviceChoice, selectDevice } from './device.js';

/**
 * Runs `fn` with the chosen device's buffer pool (null: the CPU) and closes the device after; `note` gets the
 * one-line account of the choice when a GPU was asked for.
 */
export async function withDevice<T>(
  choice: DeviceChoice,
  note: (line: string) => void,
  fn: (ctx: GpuContext | null) => Promise<T>,
): Promise<T> {
  const { gpu, note: why } = await selectDevice(choice);
  if (choice !== 'cpu') note(why);
  try {
    return await fn(gpu?.ctx ?? null);
  } finally {
    if (gpu !== null) await closeGpu();
  }
}
