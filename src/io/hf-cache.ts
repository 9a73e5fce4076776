/**
 * Hugging Face ids as model paths: `org/name` or `org/name@revision` found in the local Hugging Face cache, the
 * layout transformers and huggingface_hub write (`huggingface-cli download`). Nothing is ever downloaded.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InputError } from '../errors.js';

/** `org/name` with an optional `@revision` (a branch, a tag, `refs/pr/1`, or a commit hash). */
const HF_ID = /^([A-Za-z0-9][A-Za-z0-9._-]*)\/([A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._/-]+))?$/;
const COMMIT = /^[0-9a-f]{40}$/;

/** Whether `s` reads as a Hugging Face id `org/name[@revision]`. */
export function isHfId(s: string): boolean {
  return HF_ID.test(s);
}

/**
 * The directory `given` names: `given` itself when it exists, relative to `base` (the working directory by default;
 * a local path always wins over an id), else, when
 * it reads as a Hugging Face id `org/name[@revision]`, its snapshot in the local cache,
 * `$HF_HUB_CACHE/models--org--name/snapshots/<commit>/`, where `<commit>` is the revision itself when it is a
 * 40-hex commit hash and otherwise the hash stored in `refs/<revision>` (`refs/main` without one). HF_HUB_CACHE
 * defaults to `$HF_HOME/hub`, HF_HOME to `$XDG_CACHE_HOME/huggingface` or `~/.cache/huggingface`.
 *
 * A path that does not exist and is no id is returned as is (the caller's own "not a directory" error names
 * it). An id that is not in the cache is `fail(problem)` (by default an InputError `<id>: --model: <problem>`),
 * the problem naming every place looked in and that nothing is downloaded.
 */
export function resolveModelPath(
  given: string,
  {
    base = process.cwd(),
    fail = (problem) => new InputError(given, '--model', problem),
  }: { base?: string; fail?: (problem: string) => Error } = {},
): string {
  const local = path.resolve(base, given);
  if (fs.existsSync(local)) return given;
  const m = HF_ID.exec(given);
  if (m === null || m[3]?.split('/').some((part) => part === '' || part === '.' || part === '..')) return given;
  const [, org, name, revision = 'main'] = m;
  const env = process.env;
  const home =
    env.HF_HOME ||
    (env.XDG_CACHE_HOME
      ? path.join(env.XDG_CACHE_HOME, 'huggingface')
      : path.join(os.homedir(), '.cache', 'huggingface'));
  const cache = env.HF_HUB_CACHE || path.join(home, 'hub');
  const repo = path.join(cache, `models--${org}--${name}`);
  const looked = [local];
  let commit: string | null = COMMIT.test(revision) ? revision : null;
  if (commit === null) {
    const ref = path.join(repo, 'refs', revision);
    looked.push(ref);
    try {
      const text = fs.readFileSync(ref, 'utf8').trim();
      if (text !== '') commit = text;
    } catch {
      // not in the cache: said below
    }
  }
  if (commit !== null) {
    const snapshot = path.join(repo, 'snapshots', commit);
    if (fs.existsSync(snapshot) && fs.statSync(snapshot).isDirectory()) return snapshot;
    looked.push(snapshot);
  }
  const id = m[3] === undefined ? `${org}/${name}` : `${org}/${name}@${revision}`;
  throw fail(
    `not a local directory, and Hugging Face id ${id} is not in the local cache (looked in ${looked.join(', ')}); nothing is downloaded: fetch it with \`huggingface-cli download ${org}/${name}${m[3] === undefined ? '' : ` --revision ${revision}`}\`, or set HF_HUB_CACHE or HF_HOME`,
  );
}
