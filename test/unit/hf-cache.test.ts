/**
 * Hugging Face ids as --model and model.path (src/io/hf-cache.ts): a transformers-style cache written here
 * (`models--org--name/refs/<rev>` holding a commit, `snapshots/<commit>/`), HF_HUB_CACHE / HF_HOME /
 * XDG_CACHE_HOME set per test. main, a named ref, a commit hash given directly, HF_HOME's and XDG_CACHE_HOME's
 * defaults, a missing id's one line naming every place looked in, a local directory winning over an id, and a
 * recipe's model.path written as an id.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { resolveModelPath } from '../../src/io/hf-cache.js';
import { checkRecipeModel } from '../../src/recipe/check-model.js';
import { loadRecipe } from '../../src/recipe/load.js';
import { inputErrorMessage } from '../helpers/errors.js';
import { tinyStoriesDir } from '../helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-hf-cache-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const MAIN = 'a'.repeat(40);
const V1 = '0123456789abcdef0123456789abcdef01234567';
const ENV = ['HF_HUB_CACHE', 'HF_HOME', 'XDG_CACHE_HOME'] as const;
const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));
let n = 0;
let root: string;

/** A cache under `hub` for org/name: refs main -> MAIN, v1 -> V1, both snapshots with a config.json. */
function writeCache(hub: string, repo = 'models--org--name'): string {
  const dir = path.join(hub, repo);
  for (const [ref, commit] of [
    ['main', MAIN],
    ['v1', V1],
  ]) {
    fs.mkdirSync(path.join(dir, 'refs'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'refs', ref), commit); // huggingface_hub writes no newline
    fs.mkdirSync(path.join(dir, 'snapshots', commit), { recursive: true });
    fs.writeFileSync(path.join(dir, 'snapshots', commit, 'config.json'), '{}');
  }
  return dir;
}

beforeEach(() => {
  root = path.join(tmp, `t${n++}`);
  fs.mkdirSync(root);
  for (const k of ENV) delete process.env[k];
});
afterEach(() => {
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

describe('resolveModelPath', () => {
  it('org/name is the snapshot refs/main names, in HF_HUB_CACHE', () => {
    process.env.HF_HUB_CACHE = path.join(root, 'hub');
    const repo = writeCache(process.env.HF_HUB_CACHE);
    expect(resolveModelPath('org/name')).toBe(path.join(repo, 'snapshots', MAIN));
  });

  it('org/name@v1 follows refs/v1; a 40-hex revision is the snapshot itself (no ref read)', () => {
    process.env.HF_HUB_CACHE = path.join(root, 'hub');
    const repo = writeCache(process.env.HF_HUB_CACHE);
    expect(resolveModelPath('org/name@v1')).toBe(path.join(repo, 'snapshots', V1));
    fs.rmSync(path.join(repo, 'refs'), { recursive: true });
    expect(resolveModelPath(`org/name@${V1}`)).toBe(path.join(repo, 'snapshots', V1));
  });

  it('without HF_HUB_CACHE: $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub', () => {
    process.env.HF_HOME = path.join(root, 'home');
    const inHome = writeCache(path.join(root, 'home', 'hub'));
    process.env.XDG_CACHE_HOME = path.join(root, 'xdg');
    const inXdg = writeCache(path.join(root, 'xdg', 'huggingface', 'hub'));
    expect(resolveModelPath('org/name')).toBe(path.join(inHome, 'snapshots', MAIN));
    delete process.env.HF_HOME;
    expect(resolveModelPath('org/name')).toBe(path.join(inXdg, 'snapshots', MAIN));
  });

  it('a missing id is one line naming the id, every place looked in, and that nothing is downloaded', () => {
    const hub = path.join(root, 'hub');
    process.env.HF_HUB_CACHE = hub;
    const repo = path.join(hub, 'models--org--other');
    const message = inputErrorMessage(() => resolveModelPath('org/other'));
    expect(message).toBe(
      `org/other: --model: not a local directory, and Hugging Face id org/other is not in the local cache (looked in ${path.resolve('org/other')}, ${path.join(repo, 'refs', 'main')}); nothing is downloaded: fetch it with \`huggingface-cli download org/other\`, or set HF_HUB_CACHE or HF_HOME`,
    );
    expect(message).not.toContain('\n');
    // a ref whose snapshot is gone names the snapshot too; a named revision is kept in the id
    const cached = writeCache(hub);
    fs.rmSync(path.join(cached, 'snapshots', V1), { recursive: true });
    expect(inputErrorMessage(() => resolveModelPath('org/name@v1'))).toContain(
      `Hugging Face id org/name@v1 is not in the local cache (looked in ${path.resolve('org/name@v1')}, ${path.join(cached, 'refs', 'v1')}, ${path.join(cached, 'snapshots', V1)}); nothing is downloaded: fetch it with \`huggingface-cli download org/name --revision v1\``,
    );
  });

  it('an existing local directory wins over an id; what is no id is returned as is', () => {
    process.env.HF_HUB_CACHE = path.join(root, 'hub');
    writeCache(process.env.HF_HUB_CACHE);
    fs.mkdirSync(path.join(root, 'org', 'name'), { recursive: true });
    expect(resolveModelPath('org/name', { base: root })).toBe('org/name');
    expect(resolveModelPath(path.join(root, 'org', 'name'))).toBe(path.join(root, 'org', 'name'));
    expect(resolveModelPath('./nope/here')).toBe('./nope/here');
    expect(resolveModelPath(path.join(root, 'nope'))).toBe(path.join(root, 'nope'));
    expect(resolveModelPath('a/b/c')).toBe('a/b/c');
  });

  it('the error is the caller’s when it gives one', () => {
    process.env.HF_HUB_CACHE = path.join(root, 'hub');
    expect(() => resolveModelPath('org/none', { fail: (p) => new InputError('x.yaml:2 model.path', p) })).toThrow(
      /^x\.yaml:2 model\.path: not a local directory, and Hugging Face id org\/none/,
    );
  });
});

describe("a recipe's model.path as a Hugging Face id", () => {
  const recipe = (model: string) => {
    const file = path.join(root, 'r', 'recipe.yaml');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(
      file,
      ['model:', `  path: ${model}`, 'data:', '  path: data.json', '  format: alpaca', 'train:', '  steps: 10']
        .concat(['output:', '  dir: out', ''])
        .join('\n'),
    );
    return file;
  };

  it('is its snapshot when checked (a directory beside the recipe wins); a missing one is a located field error', () => {
    const hub = path.join(root, 'hub');
    process.env.HF_HUB_CACHE = hub;
    const snapshot = path.join(hub, 'models--org--tiny', 'snapshots', MAIN);
    fs.mkdirSync(path.join(hub, 'models--org--tiny', 'refs'), { recursive: true });
    fs.writeFileSync(path.join(hub, 'models--org--tiny', 'refs', 'main'), MAIN);
    fs.mkdirSync(path.dirname(snapshot), { recursive: true });
    fs.symlinkSync(tinyStoriesDir, snapshot);
    const loaded = loadRecipe(recipe('org/tiny'));
    expect(checkRecipeModel(loaded).maxPositions).toBe(512);
    expect(loaded.recipe.model.path).toBe(snapshot);

    const missing = recipe('org/none');
    expect(inputErrorMessage(() => checkRecipeModel(loadRecipe(missing)))).toMatch(
      new RegExp(
        `^${missing}:2 model\\.path: not a local directory, and Hugging Face id org/none is not in the local cache \\(looked in ${path.join(root, 'r', 'org', 'none')}, ${path.join(hub, 'models--org--none', 'refs', 'main')}\\); nothing is downloaded`,
      ),
    );

    fs.mkdirSync(path.join(root, 'r', 'org'), { recursive: true });
    fs.symlinkSync(tinyStoriesDir, path.join(root, 'r', 'org', 'tiny'));
    const local = loadRecipe(recipe('org/tiny'));
    checkRecipeModel(local);
    expect(local.recipe.model.path).toBe(path.join(root, 'r', 'org', 'tiny'));
  });
});
