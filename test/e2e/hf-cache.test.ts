/**
 * `wct eval --model org/name` from dist: the id resolves in a Hugging Face cache written here (HF_HUB_CACHE, a
 * snapshot of symlinks to tinystories-656k's files, as huggingface_hub writes them to its blobs) and evaluates to
 * the perplexity of the directory itself, `org/name@<commit>` too; an id not in the cache is one line naming it
 * and where it looked, and nothing is downloaded.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, wct } from '../helpers/cli.js';
import { dataDir, tinyStoriesDir } from '../helpers/paths.js';

const STORIES = path.join(dataDir, 'text/tinystories/tinystories-valid-sample.txt');
const COMMIT = '5d5a0d6c1b2e3f405162738495a6b7c8d9e0f1a2';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-hf-cache-e2e-'));
const hub = path.join(tmp, 'hub');
const saved = process.env.HF_HUB_CACHE;

beforeAll(() => {
  const repo = path.join(hub, 'models--org--tinystories');
  const snapshot = path.join(repo, 'snapshots', COMMIT);
  fs.mkdirSync(snapshot, { recursive: true });
  fs.mkdirSync(path.join(repo, 'refs'));
  fs.writeFileSync(path.join(repo, 'refs', 'main'), COMMIT);
  for (const f of fs.readdirSync(tinyStoriesDir)) fs.symlinkSync(path.join(tinyStoriesDir, f), path.join(snapshot, f));
  process.env.HF_HUB_CACHE = hub; // the CLI inherits it
});
afterAll(() => {
  if (saved === undefined) delete process.env.HF_HUB_CACHE;
  else process.env.HF_HUB_CACHE = saved;
  fs.rmSync(tmp, { recursive: true, force: true });
});

function ppl(model: string): number {
  const r = wct(['eval', '--model', model, '--data', STORIES, '--seqlen', '128', '--json'], 120_000);
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { ppl: number }).ppl;
}

describe('wct eval --model with a Hugging Face id', () => {
  it('org/name (refs/main) and org/name@<commit> give the directory’s perplexity', () => {
    const direct = ppl(tinyStoriesDir);
    expect(Number.isFinite(direct)).toBe(true);
    expect(ppl('org/tinystories')).toBe(direct);
    expect(ppl(`org/tinystories@${COMMIT}`)).toBe(direct);
  });

  it('an id not in the cache is one line naming it and where it looked; nothing is downloaded', () => {
    const line = expectOneLineError(wct(['eval', '--model', 'org/absent', '--data', STORIES]));
    expect(line).toContain('org/absent');
    expect(line).toContain(path.join(hub, 'models--org--absent', 'refs', 'main'));
    expect(line).toContain('nothing is downloaded');
  });
});
