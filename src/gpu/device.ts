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
 */
// The package's types (they bring @webgpu/types' GPU* globals); the package itself is imported in loadDawn().
import type * as Dawn from 'webgpu';
import { isMainThread } from 'node:worker_threads';
import { GpuContext } from './array.js';

/** The Debian packages that give Dawn an adapter on a machine without a GPU (scripts/setup.sh installs them). */
export const MESA_PACKAGES = ['libegl1', 'libegl-mesa0', 'libgles2', 'libgl1-mesa-dri'] as const;

/** Which of Dawn's backends to try: `opengles` (llvmpipe, CI), or the platform's default (Vulkan/Metal/D3D12). */
export type GpuBackend = 'default' | 'opengles';

export interface GpuAdapterReport {
  backend: GpuBackend;
  /** Adapter description as Dawn gives it, e.g. `OpenGL version OpenGL ES 3.2 Mesa 22.3.6`. */
  description: string;
  vendor: string;
  architecture: string;
  device: string;
  /** llvmpipe, lavapipe, SwiftShader, WARP: a CPU renderer, for correctness only. */
  software: boolean;
  features: string[];
  /** The device's limits (numbers only), after asking for the adapter's compute limits. */
  limits: Record<string, number>;
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

/** The compute limits a device asks of its adapter (the kernels size workgroups from them). */
const COMPUTE_LIMITS = [
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
] as const;

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

function isSoftware(info: GPUAdapterInfo): boolean {
  const words = `${info.description} ${info.device} ${info.vendor} ${info.architecture}`.toLowerCase();
  return /llvmpipe|lavapipe|softpipe|swiftshader|warp|microsoft basic render/.test(words);
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
  const adapter = await gpu.requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions);
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
  const device = await adapter.requestDevice({ requiredLimits });
  const info = adapter.info;
  const report: GpuAdapterReport = {
    backend,
    description: info.description,
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    software: isSoftware(info),
    features: [...adapter.features].sort(),
    limits: limitsOf(device.limits),
    openMs: performance.now() - t0,
  };
  return { device, ctx: new GpuContext(device), report, instance: gpu, adapter };
}

/**
 * The process's device, opened on first use. `backend` defaults to `WCT_GPU_BACKEND` from the environment,
 * else `opengles` (the only backend this project's machines have); later calls return the same device.
 */
export function getGpu(backend?: GpuBackend): Promise<Gpu> {
  if (open === null) {
    const b = backend ?? (process.env.WCT_GPU_BACKEND === 'default' ? 'default' : 'opengles');
    open = openGpu(b).then(
      (g) => {
        current = g;
        return g;
      },
      (e: unknown) => {
        open = null;
        throw e;
      },
    );
  }
  return open;
}

/** Destroys the device (buffers with it); the next getGpu() opens a new one. */
export async function closeGpu(): Promise<void> {
  const p = open;
  open = null;
  if (p === null) return;
  await p.catch(() => undefined);
  current?.device.destroy();
  current = null;
}

// TEMP until g-bench lands (merge takes theirs)
export type DeviceChoice = 'cpu' | 'gpu' | 'auto';
export async function selectDevice(choice: DeviceChoice): Promise<{ gpu: Gpu | null; note: string }> {
  if (choice !== 'gpu') return { gpu: null, note: 'cpu' };
  const gpu = await getGpu();
  return { gpu, note: `gpu: ${gpu.report.description}` };
}
