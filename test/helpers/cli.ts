import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './paths.js';

export const cliPath = path.join(repoRoot, 'dist/src/cli/wct.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (npm ci / npm run build produce dist/). */
export function wct(args: string[], timeoutMs = 280_000): CliResult {
  if (!fs.existsSync(cliPath)) throw new Error(`${cliPath} is missing: run npm run build first`);
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', timeout: timeoutMs, cwd: repoRoot });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user-facing failure: exit code 1 and one line on stderr with no stack trace. */
export function expectOneLineError(r: CliResult): string {
  const lines = r.stderr.trim().split('\n');
  if (r.status !== 1 || lines.length !== 1 || /\n\s+at /.test(r.stderr)) {
    throw new Error(`expected exit 1 with a one-line error, got status ${r.status}:\n${r.stderr}`);
  }
  return lines[0];
}

/**
 * A user-facing failure after some phases ran: exit code 1, the error as the last stderr line, no stack trace,
 * no usage text, and no other error line (the earlier lines are the finished phases' summaries and notes).
 */
export function expectFinalErrorLine(r: CliResult): string {
  const lines = r.stderr.trim().split('\n');
  const last = lines.at(-1) ?? '';
  const earlier = lines.slice(0, -1);
  if (
    r.status !== 1 ||
    !last.startsWith('error: ') ||
    /\n\s+at /.test(r.stderr) ||
    earlier.some((l) => l.startsWith('error') || /^(Options|Usage):/.test(l))
  ) {
    throw new Error(`expected exit 1 with one final error line, got status ${r.status}:\n${r.stderr}`);
  }
  return last;
}
