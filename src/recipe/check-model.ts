/**
 * The checks of a loaded recipe against its base model, made when a run starts and before it writes anything
 * (loading reads no file but the recipe): model.path is a checkpoint directory (a Hugging Face id `org/name[@rev]`
 * written in its place, which loading resolved against the recipe's directory like any path, becomes its snapshot
 * in the local cache: src/io/hf-cache.ts), and every length the run feeds
 * the model (data.max_length, eval.seqlen, model.quantize.seqlen) is within the base's positions. Errors are
 * located as loading errors are: `x.yaml:3 data.max_length: ...`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { resolveModelPath } from '../io/hf-cache.js';
import { readConfig } from '../models/families/registry.js';
import { positionsProblem, type ModelConfig } from '../models/model.js';
import type { LoadedRecipe } from './load.js';

export function checkRecipeModel(loaded: LoadedRecipe): ModelConfig {
  const r = loaded.recipe;
  const dir = cachedModel(loaded);
  r.model.path = dir;
  if (!fs.existsSync(dir)) throw loaded.fieldError(['model', 'path'], `${dir} does not exist`);
  if (!fs.statSync(dir).isDirectory() || !fs.existsSync(path.join(dir, 'config.json')))
    throw loaded.fieldError(['model', 'path'], `${dir} is not a checkpoint directory (it has no config.json)`);
  const config = readConfig(dir);
  const lengths: [string[], number | undefined][] = [
    [['data', 'max_length'], r.data.max_length],
    [['eval', 'seqlen'], r.eval.seqlen],
    [['model', 'quantize', 'seqlen'], r.model.quantize?.seqlen],
  ];
  for (const [p, n] of lengths) {
    const problem = n === undefined ? null : positionsProblem(config, n, `${n} tokens`);
    if (problem === null) continue;
    const set = p.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], loaded.raw) !== undefined;
    throw loaded.fieldError(p, set ? problem : `${problem}; ${n} is the default: set it`);
  }
  return config;
}

/**
 * model.path itself (loading made a path absolute), or, for a Hugging Face id the loader kept as written (no such
 * path beside the recipe), the id's snapshot in the local cache, its absence a field error naming the places
 * looked in.
 */
function cachedModel(loaded: LoadedRecipe): string {
  const dir = loaded.recipe.model.path;
  if (path.isAbsolute(dir)) return dir;
  return path.resolve(
    resolveModelPath(dir, { base: path.dirname(loaded.file), fail: (p) => loaded.fieldError(['model', 'path'], p) }),
  );
}
