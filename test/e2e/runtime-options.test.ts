/**
 * `--threads` / WCT_THREADS on every command of both CLIs and `--version`: the version text names the package
 * version, the addon's compiler, OpenBLAS, oneDNN, OpenMP, the CPU path and features, and the thread count in use,
 * which --threads sets (the flag winning over WCT_THREADS); bad counts are one-line errors naming the source.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { physicalCores } from '../../src/native/cpu-topology.js';
import { expectOneLineError, type CliResult } from '../helpers/cli.js';
import { repoRoot } from '../helpers/paths.js';

const CLIS = { wct: 'dist/src/cli/wct.js', 'wct-train': 'dist/src/cli/wct-train.js' };

function run(cli: keyof typeof CLIS, args: string[], env: Record<string, string> = {}): CliResult {
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!('WCT_THREADS' in env)) delete e.WCT_THREADS;
  const r = spawnSync(process.execPath, [path.join(repoRoot, CLIS[cli]), ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    cwd: repoRoot,
    env: e,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;

function threadsLine(r: CliResult): string {
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').find((l) => l.startsWith('threads: ')) ?? '';
}

describe('--version and --threads', () => {
  for (const cli of ['wct', 'wct-train'] as const) {
    it(`${cli} --version prints the version, the addon build, the CPU features and the threads`, () => {
      const r = run(cli, ['--version']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`${cli} ${version} (owq-wct)`);
      expect(r.stdout).toMatch(
        /^addon: (gcc|clang) \d+\.\d+.*; OpenBLAS \d+\.\d+\.\d+ .*; oneDNN \d+\.\d+\.\d+.*; OpenMP \d{6}$/m,
      );
      expect(r.stdout).toMatch(/^cpu: (avx512|avx2|portable) kernels \(features: .*\)/m);
      expect(threadsLine(r)).toMatch(new RegExp(`^threads: ${physicalCores()} .*OMP_WAIT_POLICY=passive$`));
    });

    it(`${cli}: --threads sets the count, WCT_THREADS too, and the flag wins`, () => {
      expect(threadsLine(run(cli, ['--threads', '3', '--version']))).toMatch(/^threads: 3 /);
      expect(threadsLine(run(cli, ['--version'], { WCT_THREADS: '5' }))).toMatch(/^threads: 5 /);
      expect(threadsLine(run(cli, ['--threads', '1', '--version'], { WCT_THREADS: '5' }))).toMatch(/^threads: 1 /);
      expect(threadsLine(run(cli, ['--version'], { OMP_WAIT_POLICY: 'active' }))).toMatch(/OMP_WAIT_POLICY=active$/);
    });

    it(`${cli}: a bad thread count is a one-line error naming where it came from`, () => {
      for (const bad of ['0', '-2', '1.5', 'abc', '99999']) {
        expect(expectOneLineError(run(cli, ['--threads', bad, '--version']))).toBe(
          `error: --threads: expected an integer from 1 to 4096, got "${bad}"`,
        );
      }
      expect(expectOneLineError(run(cli, ['--version'], { WCT_THREADS: 'x2' }))).toBe(
        'error: WCT_THREADS: expected an integer from 1 to 4096, got "x2"',
      );
    });
  }

  it('wct eval --threads 1 runs (the option is global)', () => {
    const r = run('wct', ['eval', '--threads', '1', '--model', 'nonexistent-dir']);
    expect(expectOneLineError(r)).toMatch(/nonexistent-dir/);
  });
});
