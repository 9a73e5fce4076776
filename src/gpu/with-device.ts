/** Running a piece of work on the device a `--device` choice names (src/gpu/device.ts `selectDevice`). */
import type { GpuContext } from './array.js';
import { OptionError } from '../errors.js';
import { closeGpu, type DeviceChoice, GpuUnavailableError, selectDevice } from './device.js';

/**
 * Runs `fn` with the chosen device's buffer pool (null: the CPU) and closes the device after; `note` gets the
 * one-line account of the choice when a GPU was asked for.
 */
export async function withDevice<T>(
  choice: DeviceChoice,
  note: (line: string) => void,
  fn: (ctx: GpuContext | null) => Promise<T>,
): Promise<T> {
  const { gpu, note: why } = await selectDevice(choice).catch((e: unknown) => {
    // no adapter for --device gpu: the user's to fix (packages, drivers), one line naming the option
    throw e instanceof GpuUnavailableError ? new OptionError('--device', e.message) : e;
  });
  if (choice !== 'cpu') note(why);
  try {
    return await fn(gpu?.ctx ?? null);
  } finally {
    if (gpu !== null) await closeGpu();
  }
}
