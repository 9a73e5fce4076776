/**
 * `npm run bench -- --device ...` (dist/bench/run.js): cpu (the default) and gpu are the choices; anything else
 * is the usage line and exit 1, before any bench runs. (The benches themselves are not run here: minutes.)
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/paths.js';

function bench(args: string[]) {
  return spawnSync(process.execPath, [path.join(repoRoot, 'dist/bench/run.js'), ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    cwd: repoRoot,
  });
}

describe('bench --device', () => {
  for (const args of [['--device', 'tpu'], ['--device'], ['--devices', 'gpu'], ['--device=gpu', 'extra']]) {
    it(`refuses ${args.join(' ')} with the usage line`, () => {
      const r = bench(args);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`usage: npm run bench [-- --device cpu|gpu] (got ${args.join(' ')})\n`);
    });
  }
});
