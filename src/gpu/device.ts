/**
 * The WebGPU device (Dawn's dawn.node, the `webgpu` npm package), opened once per process.
 *
 * On machines without a GPU the adapter is Mesa's llvmpipe through Dawn's OpenGL ES backend: it needs
 * `EGL_PLATFORM=surfaceless` in the environment before EGL initializes (this module sets it when unset, before
 * it loads dawn.node; only on the main thread: a worker's process.env does not reach EGL, so vitest's `threads`
 * pool or a worker needs it set before node starts) and a compatibility-mode adapter (the GLES backend offers no core adapter). Real GPUs go
 * through Vulkan, Metal or D3D12 with Dawn's default backend selection.
 *
 * The device asks for the adapter's own compute limits (invocations per workgroup, workgroup storage,
 * binding and buffer sizes): the defaults of a compatibility device are lower (128 invocations, 16 KiB).
 * `closeGpu()` destroys the device; call it when done so that nothing of Dawn outlives the work.
 *
 * Device selection (`--device cpu|gpu|auto`, selectDevice): `auto` uses a hardware adapter of Dawn's default
 * backend when there is one, else the CPU; `gpu` the hardware adapter, else llvmpipe through OpenGL ES. The
 * default backend is probed in a child process (src/gpu/probe.ts) so that its diagnostics for a missing Vulkan
 * stay off the terminal and this process opens only the backend chosen. Opening OpenGL ES in-process makes Dawn
 * print two `maxDynamic...BuffersPerPipelineLayout artificially reduced` warnings to fd 2 from native code during
 * requestAdapter: the process's stderr is pointed at /dev/null for that call (the native addon's muteStderr), unless
 * WCT_GPU_DIAGNOSTICS=1 asks to see Dawn's messages (`wct env` shows them for every backend anyway).
 */
// The package's types (they bring @webgpu/types' GPU* globals); the package itself is imported in loadDawn().
import type * as Dawn from 'webgpu';
import { isMainThread } from 'node:worker_threads';
import { withStderrMuted } from '../native/addon.js';
import { GpuContext } from './array.js';
import {
  type AdapterSummary,
  type BackendProbe,
  COMPUTE_LIMITS,
  type GpuBackend,
  isSoftware,
  probeBackend,
} from './probe.js';

export type { GpuBackend } from './probe.js';

/** The Debian packages that give Dawn an adapter on a machine without a GPU (scripts/setup.sh installs them). */
export const MESA_PACKAGES = ['libegl1', 'libegl-mesa0', 'libgles2', 'libgl1-mesa-dri'] as const;

/** What a GPU needs on Linux: the Vulkan loader (the vendor's ICD comes with its driver, e.g. NVIDIA's). */
export const VULKAN_PACKAGES = ['libvulkan1'] as const;

/** The environment variable that forces one of Dawn's backends (`default` or `opengles`). */
export const BACKEND_ENV = 'WCT_GPU_BACKEND';

export interface GpuAdapterReport extends AdapterSummary {
  backend: GpuBackend;
  /** Milliseconds to load dawn.node, get the adapter and the device. */
  openMs: number;
}

export interface Gpu {
  device: GPUDevice;
  /** The device's buffer pool, the home of every GpuArray made on it. */
  ctx: GpuContext;
  report: GpuAdapterReport;
  /**
   * The Dawn instance (create()'s GPU) and adapter, held for the device's lifetime: once the instance was
   * garbage-collected, dawn.node's event polling ran on the freed instance (SIGSEGV in
   * InstanceBase::ProcessEvents, or `terminate called ... std::system_error` / `The futex facility returned an
   * unexpected error code`, a few calls into a test).
   */
  instance: GPU;
  adapter: GPUAdapter;
}

/** The adapter was not found: names what to install. */
export class GpuUnavailableError extends Error {
  override readonly name = 'GpuUnavailableError';
}

/** Features the device asks for when its adapter has them. */
export const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

interface DawnModule {
  create: typeof Dawn.create;
  globals: typeof Dawn.globals;
}

let open: Promise<Gpu> | null = null;
/** EGL_PLATFORM was set here from a worker thread, where it cannot reach the process environment. */
let envLostInWorker = false;
let current: Gpu | null = null;

async function loadDawn(): Promise<DawnModule> {
  // EGL reads EGL_PLATFORM when Dawn first initializes it; without it llvmpipe gives no adapter. Set before
  // the import: the package's index.js loads dawn.node at import time.
  // A worker thread's process.env is its own copy: setting it there does not reach EGL's getenv.
  if (process.env.EGL_PLATFORM === undefined && !isMainThread) envLostInWorker = true;
  process.env.EGL_PLATFORM ??= 'surfaceless';
  return (await import('webgpu')) as DawnModule;
}

function limitsOf(l: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k in l) {
    const v = (l as unknown as Record<string, unknown>)[k];
    if (typeof v === 'number') out[k] = v;
  }
  return out;
}

async function openGpu(backend: GpuBackend): Promise<Gpu> {
  const t0 = performance.now();
  const dawn = await loadDawn();
  const gpu = dawn.create(backend === 'opengles' ? ['backend=opengles'] : []);
  // Compatibility mode: the only mode the GLES backend offers; a core adapter is returned where it exists.
  const request = () => gpu.requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions);
  const adapter = await (process.env.WCT_GPU_DIAGNOSTICS === '1' ? request() : withStderrMuted(request));
  if (adapter === null) {
    throw new GpuUnavailableError(
      backend === 'opengles'
        ? `no WebGPU adapter through Dawn's OpenGL ES backend: install Mesa's software renderer ` +
            `(apt-get install ${MESA_PACKAGES.join(' ')}, or run scripts/setup.sh); EGL_PLATFORM is ` +
            (envLostInWorker
              ? 'unset in the process (a worker thread cannot set it: start node with EGL_PLATFORM=surfaceless)'
              : `${process.env.EGL_PLATFORM ?? 'unset'} (needs surfaceless without a display)`)
        : 'no WebGPU adapter: a GPU needs its Vulkan driver (Linux: libvulkan1 and the vendor ICD), Metal or ' +
            `D3D12; on a machine without a GPU use the opengles backend (apt-get install ${MESA_PACKAGES.join(' ')})`,
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const k of COMPUTE_LIMITS) requiredLimits[k] = adapter.limits[k];
  // The optional features the kernels can use, where the adapter has them (none on llvmpipe): a kernel checks
  // device.features.has('shader-f16') before it declares `enable f16;`.
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const report: GpuAdapterReport = {
    backend,
    description: info.description,
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    software: isSoftware(info as GPUAdapterInfo & { isFallbackAdapter?: boolean }),
    features: [...adapter.features].sort(),
    limits: limitsOf(device.limits),
    openMs: performance.now() - t0,
  };
  return { device, ctx: new GpuContext(device), report, instance: gpu, adapter };
}

/** WCT_GPU_BACKEND as a backend (null when unset or empty); any other value is an error naming the variable. */
export function forcedBackend(env: string | undefined = process.env[BACKEND_ENV]): GpuBackend | null {
  if (env === undefined || env === '') return null;
  if (env === 'default' || env === 'opengles') return env;
  throw new GpuUnavailableError(`${BACKEND_ENV}: expected default or opengles, got ${JSON.stringify(env)}`);
}

/** The backend the process's device is open (or opening) on; null when none is. */
let openBackend: GpuBackend | null = null;

/**
 * The process's device, opened on first use. `backend` defaults to `WCT_GPU_BACKEND` from the environment,
 * else `opengles` (the software adapter every machine with Mesa has); later calls return the same device. Asking
 * for another backend than the open device's is an error (Dawn's device is opened once per process; closeGpu()
 * first).
 */
export function getGpu(backend?: GpuBackend): Promise<Gpu> {
  if (open !== null) {
    if (backend !== undefined && backend !== openBackend) {
      return Promise.reject(
        new Error(
          `getGpu: the process's device is open on the ${openBackend} backend, not ${backend}: closeGpu() first`,
        ),
      );
    }
    return open;
  }
  let b: GpuBackend;
  try {
    b = backend ?? forcedBackend() ?? 'opengles';
  } catch (e) {
    return Promise.reject(e);
  }
  openBackend = b;
  open = openGpu(b).then(
    (g) => {
      current = g;
      return g;
    },
    (e: unknown) => {
      open = null;
      openBackend = null;
      throw e;
    },
  );
  return open;
}

/** Destroys the device (buffers with it); the next getGpu() opens a new one. */
export async function closeGpu(): Promise<void> {
  const p = open;
  open = null;
  openBackend = null;
  if (p === null) return;
  await p.catch(() => undefined);
  current?.device.destroy();
  current = null;
  // A process that exited right after the destroy crashed or hung in Dawn's teardown (test/gpu/adapter.test.ts:
  // about 1 vitest worker in 2 on llvmpipe; awaiting device.lost did not help); 300 ms of settling: 0 in 10.
  await new Promise((resolve) => setTimeout(resolve, CLOSE_SETTLE_MS));
}

/** How long closeGpu lets Dawn's threads settle after destroying the device. */
const CLOSE_SETTLE_MS = 300;

// ---- device selection (--device cpu|gpu|auto) ----

export type DeviceChoice = 'cpu' | 'gpu' | 'auto';
export const DEVICE_CHOICES: readonly DeviceChoice[] = ['cpu', 'gpu', 'auto'];

/** Where a choice leads, decided from the probe of Dawn's default backend (before anything is opened). */
export interface DevicePlan {
  /** The backend to open, or null for the CPU. */
  backend: GpuBackend | null;
  /** Why, in words (completed with the adapter's name once it is open). */
  reason: string;
}

/** `description (vendor, device)` of an adapter, for notes. */
export function adapterName(a: AdapterSummary): string {
  const extra = [a.vendor, a.device].filter((s) => s !== '' && !a.description.includes(s));
  return `${a.description}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`;
}

/** Why the default backend gave no hardware adapter, in one line. */
function noHardware(probe: BackendProbe): string {
  if (probe.adapter !== null)
    return `Dawn's default backend offers only a software adapter, ${adapterName(probe.adapter)}`;
  const first = probe.diagnostics.find((l) => !l.startsWith('Warning: maxDynamic'));
  const detail = first === undefined ? '' : `: ${first.replace(/^Warning: /, '')}`;
  return `Dawn's default backend (Vulkan/Metal/D3D12) found no adapter (${probe.error ?? 'refused'}${detail})`;
}

/**
 * The plan for `choice`: `cpu` stays on the CPU; `auto` takes a hardware adapter of Dawn's default backend, else
 * the CPU (a software adapter is used only when asked for); `gpu` takes the hardware adapter, else the software
 * one through `opengles` (llvmpipe). `forced` (WCT_GPU_BACKEND) opens that backend whatever the probe says.
 */
export function planDevice(
  choice: DeviceChoice,
  defaultProbe: BackendProbe | null,
  forced: GpuBackend | null,
): DevicePlan {
  if (choice === 'cpu') return { backend: null, reason: '--device cpu' };
  if (forced !== null) return { backend: forced, reason: `${BACKEND_ENV}=${forced}` };
  const hw = defaultProbe?.adapter?.software === false;
  if (hw) return { backend: 'default', reason: "a hardware adapter through Dawn's default backend" };
  const why = defaultProbe === null ? 'the default backend was not probed' : noHardware(defaultProbe);
  if (choice === 'auto') return { backend: null, reason: `${why}; --device gpu would use the software adapter` };
  return { backend: 'opengles', reason: `${why}; the software adapter through OpenGL ES (correct, not fast)` };
}

function backendWords(b: GpuBackend): string {
  return b === 'default' ? "Dawn's default backend" : 'the OpenGL ES backend';
}

/**
 * The device for `--device choice`: `{ gpu: null }` for the CPU, else the process's device (getGpu), with a note
 * saying which adapter was chosen or why the CPU. The default backend is probed in a child process
 * (src/gpu/probe.ts), so its diagnostics never reach the terminal and the process can still open OpenGL ES.
 * `gpu` with no adapter at all throws GpuUnavailableError naming the packages to install; `auto` whose forced
 * backend (WCT_GPU_BACKEND) fails stays on the CPU and says why.
 */
export async function selectDevice(choice: DeviceChoice): Promise<{ gpu: Gpu | null; note: string }> {
  if (!DEVICE_CHOICES.includes(choice)) {
    throw new GpuUnavailableError(
      `device: expected one of ${DEVICE_CHOICES.join(', ')}, got ${JSON.stringify(choice)}`,
    );
  }
  if (choice === 'cpu') return { gpu: null, note: 'device: cpu (--device cpu)' };
  const forced = forcedBackend();
  if (open !== null && openBackend !== null) {
    const g = await open;
    if (choice === 'gpu' || !g.report.software || forced !== null) {
      return {
        gpu: g,
        note: `device: gpu, ${adapterName(g.report)} (already open, ${backendWords(g.report.backend)})`,
      };
    }
    return { gpu: null, note: `device: cpu (the open device is the software adapter ${adapterName(g.report)})` };
  }
  const probe = forced === null ? await probeBackend('default') : null;
  const plan = planDevice(choice, probe, forced);
  if (plan.backend === null) return { gpu: null, note: `device: cpu (${plan.reason})` };
  try {
    const g = await getGpu(plan.backend);
    const kind = g.report.software ? 'software' : 'hardware';
    return {
      gpu: g,
      note: `device: gpu, ${adapterName(g.report)} (${kind}, ${backendWords(plan.backend)}; ${plan.reason})`,
    };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // `gpu` without OpenGL ES, where the default backend offered a software adapter (lavapipe, WARP): take it.
    if (choice === 'gpu' && plan.backend === 'opengles' && forced === null && probe?.adapter != null) {
      const g = await getGpu('default');
      return { gpu: g, note: `device: gpu, ${adapterName(g.report)} (software, Dawn's default backend; ${msg})` };
    }
    if (choice === 'auto') return { gpu: null, note: `device: cpu (${plan.reason}, which failed: ${msg})` };
    const why = probe === null ? '' : `${noHardware(probe)}; `;
    throw new GpuUnavailableError(
      `--device gpu: no WebGPU adapter. ${why}${msg}. A GPU needs its driver and the Vulkan loader ` +
        `(apt-get install ${VULKAN_PACKAGES.join(' ')}); without a GPU, Mesa's software renderer ` +
        `(apt-get install ${MESA_PACKAGES.join(' ')}, or scripts/setup.sh). \`wct env\` shows what each backend found.`,
      { cause: e },
    );
  }
}
