/**
 * Loads a training recipe: YAML files chained by a top-level `extends: <path>` (relative to the file
 * that names it), deep-merged base first (mappings key by key; lists and scalars replaced), then
 * validated by src/recipe/schema.ts.
 *
 * Contract:
 * - Every error is an InputError whose file is `<recipe file>:<line>` and whose `where` is the dotted
 *   key (`recipes/x.yaml:12: train.optimizer.lr: expected a positive number`). The file and line are
 *   those of the file that set the key, base files included; a key that is missing is reported at its
 *   parent mapping's line (line 1 at the top level).
 * - Setting one member of an exclusive pair (schema EXCLUSIVE_KEYS, e.g. target_rank) drops the other
 *   member (target_bit) inherited from a base, so a recipe can switch between them.
 * - Path-valued fields are resolved against the directory of the file that set them and returned
 *   absolute (calib and eval.final entries only when they are not c4 / wikitext2). Nothing is checked on
 *   disk: the trainer opens the files and reports what is missing.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import type * as z from 'zod';
import { InputError } from '../errors.js';
import { isHfId } from '../io/hf-cache.js';
import { checkRegularFile } from '../io/input-file.js';
import { isObject } from '../io/json-file.js';
import { showValue } from '../util/show-value.js';
import { EXCLUSIVE_KEYS, NAMED_TEXTS, recipeSchema, type Recipe } from './schema.js';

export interface LoadedRecipe {
  /** Validated: defaults applied, paths absolute. */
  recipe: Recipe;
  /** The recipe file, absolute. */
  file: string;
  /** sha256 (hex) of the canonical JSON (sorted keys) of `recipe`: equal for recipes that mean the same. */
  hash: string;
  /** The merged recipe as written (no defaults, no `extends`, paths absolute): saved beside checkpoints. */
  raw: Record<string, unknown>;
  /** An InputError about the value at `p`, located as loading errors are (`x.yaml:12 data.max_length: ...`). */
  fieldError(p: Path, problem: string): InputError;
}

type Path = readonly (string | number)[];
/** Where a key was set: the file as the user would name it, and the 1-based line. */
interface Location {
  file: string;
  line: number;
}
/** Locations by path (pathKey). */
type Locations = Map<string, Location>;

interface Layer {
  value: Record<string, unknown>;
  locations: Locations;
}

const pathKey = (p: Path) => p.join('\u0000');

/** `train.optimizer.lr`, `eval.final[1]`. */
export function dottedKey(p: Path): string {
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('') || '(top level)';
}

export function loadRecipe(file: string): LoadedRecipe {
  const abs = path.resolve(file);
  const { value, locations } = readLayer(file, abs, []);
  const fieldError = (p: Path, problem: string) => {
    const loc = locate(locations, p, file);
    return new InputError(`${loc.file}:${loc.line} ${dottedKey(p)}`, problem); // "x.yaml:12 train.lr: expected ..."
  };
  const parsed = recipeSchema.safeParse(value);
  if (!parsed.success) {
    const { path: p, problem } = firstProblem(parsed.error.issues, value);
    throw fieldError(p, problem);
  }
  const { device: _device, ...rest } = parsed.data;
  const { gradient_checkpointing: _checkpointing, ...train } = rest.train;
  const hashed = { ...rest, train };
  return { recipe: parsed.data, file: abs, hash: sha256(canonicalJson(hashed)), raw: value, fieldError };
}

/** JSON with every object's keys sorted, so equal values give equal text whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    isObject(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, v[k]]),
        )
      : v,
  );
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** One file and, through `extends`, its bases, merged. `chain` holds the files that extend this one. */
function readLayer(display: string, abs: string, chain: readonly { display: string; abs: string }[]): Layer {
  const own = parseYamlFile(display, abs);
  resolvePaths(own.value, path.dirname(abs));
  if (!Object.hasOwn(own.value, 'extends')) return own;
  const ext = own.value.extends;
  delete own.value.extends;
  const at = locate(own.locations, ['extends'], display);
  if (typeof ext !== 'string' || ext === '')
    throw new InputError(`${at.file}:${at.line} extends`, 'expected a path to a base recipe');
  const baseAbs = path.resolve(path.dirname(abs), ext);
  const baseDisplay = path.isAbsolute(ext) ? ext : path.normalize(path.join(path.dirname(display), ext));
  const seen = [...chain, { display, abs }];
  if (seen.some((s) => samePath(s.abs, baseAbs))) {
    const cycle = [...seen.slice(seen.findIndex((s) => samePath(s.abs, baseAbs))).map((s) => s.display), baseDisplay];
    throw new InputError(`${at.file}:${at.line} extends`, `cycle: ${cycle.join(' -> ')}`);
  }
  if (!fs.existsSync(baseAbs)) throw new InputError(`${at.file}:${at.line} extends`, `${baseDisplay} not found`);
  const base = readLayer(baseDisplay, baseAbs, seen);
  return {
    value: merge(base.value, own.value, []) as Record<string, unknown>,
    locations: new Map([...base.locations, ...own.locations]),
  };
}

function samePath(a: string, b: string): boolean {
  const real = (p: string) => (fs.existsSync(p) ? fs.realpathSync(p) : p);
  return real(a) === real(b);
}

/** One YAML file as a plain object plus the line of every key and list item in it. */
function parseYamlFile(display: string, abs: string): Layer {
  let text: string;
  checkRegularFile(abs, display, 'recipe');
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(display, 'recipe', code === 'ENOENT' ? 'not found' : `cannot be read (${code ?? e})`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const lineOf = (offset: number) => lineCounter.linePos(offset).line;
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const { line, col } = lineCounter.linePos(err.pos[0]);
    throw new InputError(`${display}:${line}`, 'malformed YAML', `${err.message} (column ${col})`);
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (e) {
    throw new InputError(`${display}:1`, 'malformed YAML', (e as Error).message);
  }
  if (!isObject(value)) {
    throw new InputError(
      `${display}:1`,
      '(top level)',
      value == null
        ? 'the file is empty (expected a mapping of recipe sections)'
        : 'expected a mapping of recipe sections',
    );
  }
  const locations: Locations = new Map();
  const walk = (node: unknown, p: Path): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
        const range = keyNode?.range ?? (pair.value as Node | null)?.range;
        const q = [...p, key];
        if (range) locations.set(pathKey(q), { file: display, line: lineOf(range[0]) });
        walk(pair.value, q);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const q = [...p, i];
        const range = (item as Node | null)?.range;
        if (range) locations.set(pathKey(q), { file: display, line: lineOf(range[0]) });
        walk(item, q);
      });
    }
  };
  walk(doc.contents, []);
  return { value, locations };
}

/** Resolves the path-valued fields of one file's object against `dir` (the file's directory), in place. */
function resolvePaths(value: Record<string, unknown>, dir: string): void {
  const named = (s: string) => NAMED_TEXTS.includes(s);
  const at = (p: Path, keepNamed = false) => {
    const parent = p.slice(0, -1).reduce<unknown>((o, k) => (isObject(o) ? o[k as string] : undefined), value);
    const key = p[p.length - 1] as string;
    if (
      isObject(parent) &&
      typeof parent[key] === 'string' &&
      parent[key] !== '' &&
      !(keepNamed && named(parent[key]))
    ) {
      parent[key] = path.resolve(dir, parent[key]);
    }
  };
  // a Hugging Face id with no such path beside the recipe stays an id (src/recipe/check-model.ts resolves it)
  const model = value.model;
  const id = isObject(model) && typeof model.path === 'string' && isHfId(model.path) ? model.path : null;
  if (id === null || fs.existsSync(path.resolve(dir, id))) at(['model', 'path']);
  at(['model', 'quantize', 'calib'], true);
  at(['model', 'quantize', 'calib_tokens']);
  at(['data', 'path']);
  at(['output', 'dir']);
  at(['logging', 'tensorboard']);
  const ev = value.eval;
  if (isObject(ev) && Array.isArray(ev.final)) {
    ev.final = ev.final.map((f: unknown) =>
      typeof f === 'string' && f !== '' && !named(f) ? path.resolve(dir, f) : f,
    );
  }
  // eval.tasks: the PATH of a NAME=PATH entry (a shipped task's NAME alone stays as it is)
  if (isObject(ev) && Array.isArray(ev.tasks)) {
    ev.tasks = ev.tasks.map((t: unknown) => {
      const eq = typeof t === 'string' ? t.indexOf('=') : -1;
      return eq < 0 || eq === (t as string).length - 1
        ? t
        : `${(t as string).slice(0, eq)}=${path.resolve(dir, (t as string).slice(eq + 1))}`;
    });
  }
}

/** `over` merged onto `base`: mappings key by key, everything else replaced. */
function merge(base: unknown, over: unknown, at: Path): unknown {
  if (!isObject(base) || !isObject(over)) return over;
  const out: Record<string, unknown> = {};
  const dropped = new Set<string>();
  const group = EXCLUSIVE_KEYS.find((e) => e.at === at.join('.'));
  if (group?.keys.some((k) => Object.hasOwn(over, k))) {
    for (const k of group.keys) if (!Object.hasOwn(over, k)) dropped.add(k);
  }
  for (const [k, v] of Object.entries(base)) if (!dropped.has(k)) setOwn(out, k, v);
  for (const [k, v] of Object.entries(over)) setOwn(out, k, Object.hasOwn(base, k) ? merge(base[k], v, [...at, k]) : v);
  return out;
}

/** Plain assignment would treat a `__proto__` key specially; the schema must see it as an unknown key. */
function setOwn(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The location of `p`, or of its nearest ancestor that the files set, or line 1 of the recipe. */
function locate(locations: Locations, p: Path, recipeFile: string): Location {
  for (let n = p.length; n > 0; n--) {
    const loc = locations.get(pathKey(p.slice(0, n)));
    if (loc !== undefined) return loc;
  }
  return { file: recipeFile, line: 1 };
}

function valueAt(value: unknown, p: Path): unknown {
  return p.reduce<unknown>(
    (o, k) => (isObject(o) ? o[k as string] : Array.isArray(o) ? o[k as number] : undefined),
    value,
  );
}

/** The first problem of a failed parse of `value` (unknown keys first: a misspelt key also shows up as a
 * missing one): where, and what, with the offending value when it helps. */
export function firstProblem(issues: readonly z.core.$ZodIssue[], value: unknown): { path: Path; problem: string } {
  const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
  const p: Path = issue.path.map((k) => (typeof k === 'symbol' ? String(k) : k));
  if (issue.code === 'unrecognized_keys') return { path: [...p, issue.keys[0]], problem: 'unknown key' };
  const valueCodes = ['invalid_type', 'invalid_value', 'invalid_union', 'too_small', 'too_big', 'not_multiple_of'];
  if (valueCodes.includes(issue.code)) {
    const v = valueAt(value, p);
    return {
      path: p,
      problem: v === undefined ? `missing (${issue.message})` : `${issue.message}, got ${showValue(v)}`,
    };
  }
  return { path: p, problem: issue.message };
}
