/**
 * Output directories never cost the user a file (src/io/output-dir.ts): the refused paths, the marker that
 * --force requires, the lock between two processes (and a stale one taken over), temporaries of dead
 * processes removed, I/O failures as one line (/proc, /sys, /dev/full), and a finished recipe rerun
 * reporting "already complete" with its summary.json untouched.
 *
 * The refusals that protect the current or home directory run in a scratch directory with HOME pointed
 * at another one, so a regression deletes nothing of the repository's.
 */
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectFinalErrorLine, expectOneLineError, wct, type CliResult } from '../helpers/cli.js';
import { dataDir, repoRoot, tinyStoriesDir } from '../helpers/paths.js';

const WCT = path.join(repoRoot, 'dist/src/cli/wct.js');
const TRAIN_CLI = path.join(repoRoot, 'dist/src/cli/wct-train.js');
const RTN = ['quantize', '--model', tinyStoriesDir, '--method', 'rtn', '--wbits', '4'];

let tmp: string;
/** The first 32 records of the Alpaca sample: tokenized in no time. */
let alpaca: string;
/** A pid no process has any more. */
let deadPid: number;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-out-'));
  alpaca = path.join(tmp, 'alpaca-32.json');
  const records = JSON.parse(fs.readFileSync(path.join(dataDir, 'instruct/alpaca/alpaca-2k.json'), 'utf8'));
  fs.writeFileSync(alpaca, JSON.stringify(records.slice(0, 32)));
  deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(cli: string, args: string[], o: SpawnSyncOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000, cwd: repoRoot, ...o });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Name -> size and mtime of every file under `dir`: equal before and after means nothing was touched. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const st = fs.statSync(path.join(dir, f));
    out[f] = `${st.size}:${st.mtimeMs}`;
  }
  return out;
}

function scratch(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** A two-step LoRA recipe over the full-precision TinyStories-656K (no quantization: fast). */
function recipe(name: string, outDir = path.join(tmp, name), model = tinyStoriesDir, steps = 2): string {
  const file = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(
    file,
    [
      `model: { path: ${model} }`,
      'method: lora',
      `data: { path: ${alpaca}, format: alpaca, template: alpaca, max_length: 128, validation: { count: 4 } }`,
      `train: { steps: ${steps}, micro_batch: 2, grad_accum: 1, optimizer: { lr: 0.003 }, schedule: { kind: constant, warmup_steps: 0 } }`,
      'eval: { every: 2, final: [] }',
      `output: { dir: ${outDir}, save_every: 1, keep: 1 }`,
      'logging: { tensorboard: false, every: 1 }',
    ].join('\n'),
  );
  return file;
}

describe('refused output paths, with or without --force', () => {
  it('the empty path, the current directory, a parent of it, the root and the home directory', () => {
    const cwd = scratch('cwd');
    const home = scratch('home');
    fs.writeFileSync(path.join(cwd, 'keep.txt'), 'mine');
    fs.writeFileSync(path.join(home, 'keep.txt'), 'mine');
    const cases: [string, RegExp][] = [
      ['', /--out: empty path/],
      ['.', /--out: \. is the current directory/],
      [cwd, /is the current directory/],
      ['..', /--out: \.\. contains the current directory/],
      ['/', /--out: \/ is the filesystem root/],
      [home, /is your home directory/],
    ];
    // with --force (what used to delete them), and the first without
    cases.forEach(([out, message], i) => {
      const force = i === 0 ? [] : ['--force'];
      const r = run(WCT, [...RTN, '--out', out, ...force], { cwd, env: { ...process.env, HOME: home } });
      expect(expectOneLineError(r), `--out '${out}' ${force}`).toMatch(message);
    });
    expect(fs.readdirSync(cwd)).toEqual(['keep.txt']);
    expect(fs.readdirSync(home)).toEqual(['keep.txt']);
  });

  it('a directory that is, contains or is inside an input (quantize, merge, init-random, compare, wct-train)', () => {
    const model = path.join(scratch('inputs'), 'model');
    fs.cpSync(tinyStoriesDir, model, { recursive: true });
    const before = snapshot(model);
    const link = path.join(tmp, 'model-link');
    fs.symlinkSync(model, link);
    for (const [out, message] of [
      [model, /is the input/],
      [link, /is the input/],
      [path.join(model, 'q'), /is inside the input/],
      [path.dirname(model), /contains the input/],
    ] as const) {
      const r = wct(['quantize', '--model', model, '--method', 'rtn', '--out', out, '--force']);
      expect(expectOneLineError(r), out).toMatch(message);
    }
    expect(expectOneLineError(wct(['quantize', '--model', model, '--method', 'rtn', '--out', model]))).toMatch(
      /is the input/,
    );
    const adapter = scratch('inputs/adapter');
    expect(
      expectOneLineError(wct(['merge', '--model', model, '--adapter', adapter, '--out', adapter, '--force'])),
    ).toMatch(/--out: .*adapter is the input/);
    expect(expectOneLineError(run(TRAIN_CLI, [recipe('inside-model', path.join(model, 'run'), model)]))).toMatch(
      /output.dir: .*is inside the input/,
    );
    expect(expectOneLineError(run(TRAIN_CLI, [recipe('holds-data', tmp)]))).toMatch(
      /output.dir: .*contains the input .*alpaca-32.json/,
    );
    expect(snapshot(model)).toEqual(before);
  });
});

describe('--force replaces only what this tool wrote', () => {
  it('marks every output; refuses an existing one without --force and an unmarked one with it', () => {
    const out = path.join(tmp, 'q');
    expect(wct([...RTN, '--out', out]).status).toBe(0);
    const marker = JSON.parse(fs.readFileSync(path.join(out, '.owq-wct.json'), 'utf8'));
    expect(marker).toMatchObject({ tool: 'owq-wct', command: 'wct quantize' });
    expect(expectOneLineError(wct([...RTN, '--out', out]))).toMatch(/--out: .*q exists \(pass --force/);
    const replaced = wct([...RTN, '--out', out, '--force']);
    expect(replaced.status, replaced.stderr).toBe(0);
    expect(replaced.stderr).toMatch(/replaced .*q \(written by owq-wct .*wct quantize\)/);
    const mine = scratch('mine');
    fs.writeFileSync(path.join(mine, 'notes.txt'), 'mine');
    const before = snapshot(mine);
    for (const args of [RTN, ['init-random', '--like', 'tinystories-656k']]) {
      expect(expectOneLineError(wct([...args, '--out', mine, '--force']))).toMatch(
        /mine exists and was not written by owq-wct \(it has no \.owq-wct\.json\): --force replaces only/,
      );
    }
    expect(snapshot(mine)).toEqual(before);
    const empty = scratch('empty');
    expect(wct(['init-random', '--like', 'tinystories-656k', '--out', empty, '--force']).status).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(empty, '.owq-wct.json'), 'utf8')).command).toBe('wct init-random');
  });

  it('wct-train refuses an unmarked run directory and an unmarked base inside its own', () => {
    const mine = scratch('mine-run');
    fs.writeFileSync(path.join(mine, 'notes.txt'), 'mine');
    expect(expectOneLineError(run(TRAIN_CLI, [recipe('mine-run', mine)]))).toMatch(
      /output.dir: .*mine-run exists and was not written by owq-wct/,
    );
    const ours = scratch('ours-run');
    fs.writeFileSync(path.join(ours, '.owq-wct.json'), '{"tool":"owq-wct","version":"0.1.0","command":"wct-train"}');
    fs.mkdirSync(path.join(ours, 'base'));
    fs.writeFileSync(path.join(ours, 'base', 'notes.txt'), 'mine');
    const file = path.join(tmp, 'ours-run.yaml');
    fs.writeFileSync(
      file,
      fs
        .readFileSync(recipe('ours-run', ours), 'utf8')
        .replace(`path: ${tinyStoriesDir} }`, `path: ${tinyStoriesDir}, quantize: { method: rtn, wbits: 4 } }`)
        .replace('method: lora', 'method: qlora'),
    );
    expect(expectOneLineError(run(TRAIN_CLI, [file]))).toMatch(/base exists and was not written by owq-wct/);
    expect(fs.readFileSync(path.join(ours, 'base', 'notes.txt'), 'utf8')).toBe('mine');
  });
});

const LOCKED_STEPS = 60;

describe('the lock, temporaries of dead processes, and a finished recipe rerun', () => {
  const dir = () => path.join(tmp, 'locked');
  let first: CliResult;

  it('a second wct-train on the same directory refuses while the first runs; the first is intact', async () => {
    // enough steps that the first run still holds the lock when the second has started
    const file = recipe('locked', dir(), tinyStoriesDir, LOCKED_STEPS);
    const child = spawn(process.execPath, [TRAIN_CLI, file], { cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const lock = path.join(dir(), '.owq-wct.lock');
    for (let i = 0; i < 600 && !fs.existsSync(lock); i++) await new Promise((r) => setTimeout(r, 50));
    const second = run(TRAIN_CLI, [file]);
    expect(expectOneLineError(second)).toMatch(
      new RegExp(`output.dir: .*locked is in use by pid ${child.pid} \\(wct-train .*locked.yaml\\)`),
    );
    first = { status: await exited, stdout, stderr };
    expect(first.status, first.stderr).toBe(0);
    const steps = fs
      .readFileSync(path.join(dir(), 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    expect(steps).toEqual(Array.from({ length: LOCKED_STEPS + 1 }, (_, i) => i));
    expect(fs.existsSync(lock)).toBe(false); // released on exit
  }, 120_000);

  it('a rerun says "already complete", prints the stored summary and leaves summary.json as it was', () => {
    const summary = path.join(dir(), 'summary.json');
    const stored = fs.readFileSync(summary);
    // a stale lock and temporaries of a dead process; one of a live process (this one) stays
    const lock = { pid: deadPid, command: 'wct-train x', started: '2026-01-01T00:00:00.000Z' };
    fs.writeFileSync(path.join(dir(), '.owq-wct.lock'), JSON.stringify(lock));
    fs.mkdirSync(path.join(dir(), `checkpoint-3.tmp-${deadPid}`));
    fs.writeFileSync(path.join(dir(), `checkpoint-3.tmp-${deadPid}`, 'state.json'), '{}');
    fs.writeFileSync(path.join(dir(), `metrics.jsonl.tmp-${deadPid}`), '');
    fs.mkdirSync(path.join(dir(), `adapter.tmp-${process.pid}`));
    const again = run(TRAIN_CLI, [path.join(tmp, 'locked.yaml')]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toBe(first.stdout);
    expect(again.stderr).toMatch(/already complete: .*summary.json/);
    expect(again.stderr).toMatch(new RegExp(`taking over the lock of pid ${deadPid} \\(wct-train x`));
    expect(again.stderr).toMatch(/removed 2 temporary file\(s\) of dead processes/);
    expect(fs.readdirSync(dir()).filter((f) => f.includes('.tmp-'))).toEqual([`adapter.tmp-${process.pid}`]);
    const json = run(TRAIN_CLI, [path.join(tmp, 'locked.yaml'), '--json']);
    expect(JSON.parse(json.stdout)).toEqual(JSON.parse(stored.toString()));
    expect(Buffer.compare(fs.readFileSync(summary), stored)).toBe(0);
    // wct compare reads the run; its report may not go inside it
    expect(expectOneLineError(wct(['compare', dir(), '--out', path.join(dir(), 'cmp')]))).toMatch(
      /--out: .*cmp is inside the input/,
    );
  });

  it('quantize: a live lock refuses, a stale one is taken over, dead temporaries beside the output go', () => {
    const out = path.join(tmp, 'q-locked');
    fs.writeFileSync(`${out}.lock`, JSON.stringify({ pid: process.pid, command: 'wct quantize test' }));
    expect(expectOneLineError(wct([...RTN, '--out', out]))).toMatch(
      new RegExp(`--out: .*q-locked is in use by pid ${process.pid} \\(wct quantize test\\)`),
    );
    fs.writeFileSync(`${out}.lock`, JSON.stringify({ pid: deadPid, command: 'wct quantize test' }));
    fs.mkdirSync(`${out}.tmp-${deadPid}`);
    fs.mkdirSync(`${out}.tmp-${process.pid}`);
    const r = wct([...RTN, '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`taking over the lock of pid ${deadPid}`));
    expect(fs.existsSync(`${out}.lock`)).toBe(false);
    expect(fs.existsSync(`${out}.tmp-${deadPid}`)).toBe(false);
    expect(fs.existsSync(`${out}.tmp-${process.pid}`)).toBe(true);
  });
});

describe('I/O failures are one line naming the file, the operation and the cause', () => {
  it('an output under /proc or /sys, or under a file', () => {
    const started = Date.now();
    expect(expectOneLineError(run(WCT, [...RTN, '--out', '/proc/wct-x']))).toBe(
      'error: /proc/wct-x.lock: cannot create the lock file: no such file or directory (ENOENT)',
    );
    expect(Date.now() - started).toBeLessThan(30_000); // it used to spin forever in mkdir
    expect(expectOneLineError(run(TRAIN_CLI, [recipe('proc', '/proc/wct-x')]))).toBe(
      'error: /proc/wct-x: cannot create directory: this file system does not allow it (ENOENT, the parent exists)',
    );
    expect(expectOneLineError(run(TRAIN_CLI, [recipe('sys', '/sys/wct-x')]))).toMatch(
      /^error: \/sys\/wct-x: cannot create directory: (operation not permitted \(EPERM\)|permission denied \(EACCES\)|read-only file system \(EROFS\))$/,
    );
    expect(expectOneLineError(run(WCT, [...RTN, '--out', '/dev/full/x']))).toMatch(
      /--out: \/dev\/full\/x is under \/dev\/full, which is not a directory/,
    );
  });

  it('a full device: metrics.jsonl on /dev/full, stdout on /dev/full', () => {
    const dir = scratch('full');
    fs.writeFileSync(path.join(dir, '.owq-wct.json'), '{"tool":"owq-wct","version":"0.1.0","command":"wct-train"}');
    fs.symlinkSync('/dev/full', path.join(dir, 'metrics.jsonl'));
    // the data notes (examples truncated) come first: the error is the last line, with no stack
    const r = run(TRAIN_CLI, [recipe('full', dir)]);
    expect(r.status).toBe(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      `error: ${path.join(dir, 'metrics.jsonl')}: cannot write: no space left on device (ENOSPC)`,
    );
    const full = fs.openSync('/dev/full', 'w');
    try {
      const q = run(WCT, [...RTN, '--out', path.join(tmp, 'q-stdout'), '--json'], { stdio: ['ignore', full, 'pipe'] });
      expect(expectFinalErrorLine(q)).toBe('error: stdout: cannot write: no space left on device (ENOSPC)');
    } finally {
      fs.closeSync(full);
    }
  });
});
