/**
 * The options every command of `wct` and `wct-train` takes, applied before the command runs:
 *  - `--threads N` (or the environment variable WCT_THREADS; the flag wins): the kernels' thread count, OpenMP's and
 *    OpenBLAS's; by default the physical cores this process may run on (src/native/cpu-topology.ts). OpenMP waits
 *    passively (src/native/addon.ts), so threads beyond the free cores cost a little, not many times over.
 *  - `--version`: the package version, the addon's build, the CPU features it dispatches on and the thread count.
 */
import type { Argv } from 'yargs';
import { OptionError } from '../errors.js';
import { loadNative } from '../native/addon.js';
import { physicalCores } from '../native/cpu-topology.js';
import { packageInfo } from '../util/package-root.js';
import { runHandler } from './run.js';

export const THREADS_ENV = 'WCT_THREADS';
const MAX_THREADS = 4096; // the addon's bound (kernels/napi/addon.cc setThreads)

/** A thread count as written (flag or environment), checked: an integer from 1 to MAX_THREADS. */
function parseThreads(source: string, written: string): number {
  const n = /^\s*\d+\s*$/.test(written) ? Number(written) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_THREADS)
    throw new OptionError(source, `expected an integer from 1 to ${MAX_THREADS}, got ${JSON.stringify(written)}`);
  return n;
}

/** The thread count: --threads, else WCT_THREADS, else the physical cores available to this process. */
export function resolveThreads(flag: string | undefined, env: string | undefined): number {
  if (flag !== undefined) return parseThreads('--threads', flag);
  if (env !== undefined && env !== '') return parseThreads(THREADS_ENV, env);
  return physicalCores();
}

/** The `--version` text: what runs, what it was built with, what it runs on. */
export function versionText(program: string): string {
  const pkg = packageInfo();
  const native = loadNative();
  const b = native.buildInfo();
  return [
    `${program} ${pkg.version} (${pkg.name}), node ${process.version}`,
    `addon: ${b.compiler}; ${b.openblas}; oneDNN ${b.onednn}; OpenMP ${b.openmp}`,
    `cpu: ${native.cpuPath()} kernels (features: ${b.cpuFeatures || 'none of avx2/avx512'}); bf16 matmul: ${native.bf16Native() ? 'native' : 'emulated'}`,
    `threads: ${native.threads()} (--threads or ${THREADS_ENV}; default: the ${physicalCores()} physical cores available); ` +
      `OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? ''}`,
  ].join('\n');
}

interface RuntimeArgs {
  threads?: string;
  version?: boolean;
}

/** Adds --threads and --version to every command of `program`, applied before the command's own checks. */
export function addRuntimeOptions<T>(y: Argv<T>, program: string): Argv<T & RuntimeArgs> {
  return y
    .version(false)
    .option('threads', {
      type: 'string',
      global: true,
      describe: `Kernel threads, an integer >= 1 (default: ${THREADS_ENV}, else the physical cores available)`,
    })
    .option('version', {
      type: 'boolean',
      global: true,
      describe: 'Show the version, the native build, the CPU features in use and the thread count',
    })
    .middleware(
      runHandler((args: RuntimeArgs) => {
        loadNative().setThreads(resolveThreads(args.threads, process.env[THREADS_ENV]));
        if (args.version !== true) return;
        process.stdout.write(`${versionText(program)}\n`);
        process.exit(0);
      }),
      true,
    ) as Argv<T & RuntimeArgs>;
}
