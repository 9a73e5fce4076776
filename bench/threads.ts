/**
 * Decode speed against the thread count and a busy machine (issue 10): `wct generate --json` (greedy, from a
 * prompt) in a fresh process per run, so that each run loads OpenMP with its own settings, on TinyStories-656K and
 * on an opt-125m-shaped random model with 2 layers, with --threads 1, 2 and the default (the physical cores
 * available), each alone and with one competing CPU-bound process (a child busy loop for the run's duration).
 * The rows with OMP_WAIT_POLICY=active are the behaviour before issue 10 (OpenMP threads spinning while they
 * wait). Figures: decode tokens/s (the median of a few runs), busy / alone, and against --threads 1 alone.
 * On a machine shared with other work the figures are noisy: compare rows of one run only.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initRandom } from '../src/models/init-random.js';
import { physicalCores } from '../src/native/cpu-topology.js';
import { packageRoot } from '../src/util/package-root.js';
import { isEntryPoint, parseBenchArgs } from './cli.js';
import { writeReport, type Row } from './report.js';

const CLI = path.join(packageRoot(), 'dist/src/cli/wct.js');

interface Setting {
  threads: string | null; // null: the default
  policy: 'passive' | 'active';
  busy: boolean;
}

const SETTINGS: Setting[] = [
  ...(['1', '2', null] as const).flatMap((threads) =>
    [false, true].map((busy): Setting => ({ threads, policy: 'passive', busy })),
  ),
  { threads: null, policy: 'active', busy: false },
  { threads: null, policy: 'active', busy: true },
];

/** One `wct generate` run's decode tokens/s, with a busy-loop child alongside when `busy`. */
function decodeRate(model: string, tokens: number, s: Setting): number {
  const hog = s.busy ? spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }) : null;
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: s.policy };
    delete env.WCT_THREADS;
    delete env.OMP_NUM_THREADS;
    const args = [
      CLI,
      'generate',
      '--model',
      model,
      '--prompt',
      'Once upon a time',
      '--max-new-tokens',
      String(tokens),
    ];
    const r = spawnSync(
      process.execPath,
      [...args, ...(s.threads === null ? [] : ['--threads', s.threads]), '--json'],
      {
        encoding: 'utf8',
        env,
        timeout: 600_000,
      },
    );
    if (r.status !== 0) throw new Error(`bench threads: wct generate failed (${r.status}): ${r.stderr}`);
    return (JSON.parse(r.stdout) as { tokens_per_s: number }).tokens_per_s;
  } finally {
    hog?.kill('SIGKILL');
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function rows(name: string, model: string, tokens: number, repeats: number): Row[] {
  process.stderr.write(`bench: decode threads, ${name}\n`);
  const rates = SETTINGS.map((s) => median(Array.from({ length: repeats }, () => decodeRate(model, tokens, s))));
  const at = (threads: string | null, policy: string, busy: boolean) =>
    rates[SETTINGS.findIndex((s) => s.threads === threads && s.policy === policy && s.busy === busy)];
  const base = at('1', 'passive', false);
  return SETTINGS.map((s, i) => ({
    model: name,
    threads: s.threads ?? `default (${physicalCores()})`,
    OMP_WAIT_POLICY: s.policy === 'active' ? 'active (before)' : 'passive',
    'competing process': s.busy ? 'yes' : 'no',
    'tokens/s': rates[i],
    'busy / alone': s.busy ? rates[i] / at(s.threads, s.policy, false) : '',
    'vs --threads 1 alone': rates[i] / base,
  }));
}

export function runThreadsBench(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-bench-threads-'));
  try {
    const tiny = path.join(packageRoot(), '../shared/data/models/tinystories-656k');
    const opt = path.join(dir, 'opt-125m-2l');
    initRandom({ like: 'opt-125m', out: opt, seed: 0, layers: 2 });
    return writeReport({
      name: 'threads',
      machine: {
        cpu: os.cpus()[0]?.model ?? 'unknown',
        'logical CPUs': os.cpus().length,
        'physical cores available': physicalCores(),
        'load average at start': os.loadavg()[0].toFixed(2),
        node: process.version,
        note: 'shared machine: figures are noisy; each figure is the median of the runs',
      },
      sections: [
        {
          title: 'Decode tokens/s, TinyStories-656K, 128 new tokens (median of 3)',
          rows: rows('tinystories-656k', tiny, 128, 3),
        },
        {
          title: 'Decode tokens/s, opt-125m-shaped random, 2 layers, 32 new tokens (median of 3)',
          rows: rows('opt-125m 2 layers', opt, 32, 3),
        },
      ],
    }).md;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (isEntryPoint(import.meta.url)) {
  parseBenchArgs({
    usage: 'node dist/bench/threads.js',
    describe:
      'Decode tokens/s of `wct generate` against --threads 1, 2 and the default, alone and beside a competing process, and with OMP_WAIT_POLICY=active (WCT_THREADS and OMP_NUM_THREADS are not passed to the runs). Writes bench/results/threads.{json,md} and prints the markdown (part of `npm run bench`).',
  });
  process.stdout.write(fs.readFileSync(runThreadsBench(), 'utf8'));
}
