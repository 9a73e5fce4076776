/**
 * Resumable training checkpoints: `<output>/checkpoint-<step>/` holding `trainer.safetensors` (every
 * trainable tensor as `<name>.value` with its AdamW `<name>.adam_m` and `<name>.adam_v`, F32) and
 * `state.json` (step, optimizer step, data position, recipe hash). Written to a temporary directory and renamed, so a kill -9 never leaves a half-written
 * checkpoint; only the newest `keep` are kept.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeDirAtomic } from '../io/checkpoint-write.js';
import { InputError } from '../errors.js';
import { readJsonObject } from '../io/json-file.js';
import { openSafetensors } from '../io/safetensors-read.js';
import { writeSafetensors } from '../io/safetensors-write.js';
import { assign, hostValues } from '../tensor/device.js';
import type { Storage, Tensor } from '../tensor/tensor.js';
import type { AdamW } from './adamw.js';

export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  /** Where the training batch stream stands. */
  data: { epoch: number; position: number };
  recipeHash: string;
  /** Last validation loss, if any. */
  valLoss: number | null;
}

const PREFIX = 'checkpoint-';
const TENSORS = 'trainer.safetensors';
const STATE = 'state.json';

/** The newest complete checkpoint directory under `outputDir`, or null. */
export function latestCheckpoint(outputDir: string): string | null {
  if (!fs.existsSync(outputDir)) return null;
  const steps = fs
    .readdirSync(outputDir)
    .filter(
      (d) =>
        d.startsWith(PREFIX) && /^\d+$/.test(d.slice(PREFIX.length)) && fs.existsSync(path.join(outputDir, d, STATE)),
    )
    .map((d) => Number(d.slice(PREFIX.length)))
    .sort((a, b) => b - a);
  return steps.length === 0 ? null : path.join(outputDir, `${PREFIX}${steps[0]}`);
}

/** Parameters and optimizer state as named host tensors (read back from the GPU when they live there). */
async function checkpointTensors(names: string[], params: Tensor[], opt: AdamW) {
  const f32 = async (s: Storage) => (await hostValues(s)) as Float32Array;
  const out = [];
  for (const [i, name] of names.entries()) {
    const shape = [...params[i].shape];
    out.push(
      { name: `${name}.value`, dtype: 'F32' as const, shape, data: await f32(params[i].storage) },
      { name: `${name}.adam_m`, dtype: 'F32' as const, shape, data: await f32(opt.state.m[i]) },
      { name: `${name}.adam_v`, dtype: 'F32' as const, shape, data: await f32(opt.state.v[i]) },
    );
  }
  return out;
}

export async function saveCheckpoint(
  outputDir: string,
  names: string[],
  params: Tensor[],
  opt: AdamW,
  state: TrainerState,
  keep: number,
): Promise<string> {
  const dir = path.join(outputDir, `${PREFIX}${state.step}`);
  const tensors = await checkpointTensors(names, params, opt);
  writeDirAtomic(dir, (tmp) => {
    writeSafetensors(
      path.join(tmp, TENSORS),
      tensors.filter((t) => t.data.length > 0),
    );
    fs.writeFileSync(path.join(tmp, STATE), `${JSON.stringify({ ...state, adamStep: opt.state.step }, null, 2)}\n`);
  });
  prune(outputDir, keep);
  return dir;
}

function prune(outputDir: string, keep: number): void {
  const dirs = fs.readdirSync(outputDir).filter((d) => d.startsWith(PREFIX) && /^\d+$/.test(d.slice(PREFIX.length)));
  dirs.sort((a, b) => Number(b.slice(PREFIX.length)) - Number(a.slice(PREFIX.length)));
  for (const d of dirs.slice(keep)) fs.rmSync(path.join(outputDir, d), { recursive: true, force: true });
}

/** Restores parameters and optimizer state in place; returns the trainer state. */
export function loadCheckpoint(dir: string, names: string[], params: Tensor[], opt: AdamW): TrainerState {
  const raw = readJsonObject(path.join(dir, STATE)) as unknown as TrainerState & { adamStep: number };
  const st = openSafetensors(path.join(dir, TENSORS));
  try {
    names.forEach((name, i) => {
      if (params[i].size === 0) return;
      for (const [suffix, target] of [
        ['value', params[i].storage],
        ['adam_m', opt.state.m[i]],
        ['adam_v', opt.state.v[i]],
      ] as const) {
        const t = `${name}.${suffix}`;
        if (!st.has(t))
          throw new InputError(path.join(dir, TENSORS), t, 'missing: the checkpoint does not match this model');
        const data = st.readF32(t);
        if (data.length !== target.length)
          throw new InputError(path.join(dir, TENSORS), t, `has ${data.length} values, expected ${target.length}`);
        assign(target, data);
      }
    });
  } finally {
    st.close();
  }
  opt.state.step = raw.adamStep;
  return { step: raw.step, data: raw.data, recipeHash: raw.recipeHash, valLoss: raw.valLoss };
}
