/**
 * `--device cpu|gpu|auto` of the commands that run a model (eval, generate, quantize; wct-train's recipe field
 * `device`): cpu is the native engine; gpu the WebGPU backend on a hardware adapter, else a software one (llvmpipe);
 * auto a hardware adapter when there is one, else the CPU (src/gpu/device.ts `selectDevice`). The choice is said
 * on stderr; the device is closed when the command ends (src/gpu/with-device.ts).
 */
import type { Argv } from 'yargs';
import type { DeviceChoice } from '../gpu/device.js';

export { withDevice } from '../gpu/with-device.js';

export const DEVICE_CHOICES: readonly DeviceChoice[] = ['cpu', 'gpu', 'auto'];

export function addDeviceOption<T>(y: Argv<T>): Argv<T & { device: DeviceChoice }> {
  return y.option('device', {
    choices: DEVICE_CHOICES,
    default: 'cpu' as DeviceChoice,
    describe: 'Where the model runs: cpu, gpu (WebGPU; a software adapter when no GPU), auto (a GPU when present)',
  }) as Argv<T & { device: DeviceChoice }>;
}
