/**
 * A Hugging Face checkpoint as one name -> tensor view: `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` (`{"weight_map": {"<tensor>": "<shard file>"}}`, shard paths
 * relative to the index). Like transformers, the single file wins when both are present.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.js';
import { isObject, readJsonObject } from './json-file.js';
import { openSafetensors, type SafetensorsFile, type TensorReader } from './safetensors-read.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export interface Checkpoint extends TensorReader {
  /** The file the checkpoint was opened from (model.safetensors or the index), for messages. */
  readonly path: string;
}

/** Opens a checkpoint directory, or a `.safetensors` / `.index.json` file directly. */
export function openCheckpoint(dirOrFile: string): Checkpoint {
  const isFile = fs.existsSync(dirOrFile) && fs.statSync(dirOrFile).isFile();
  if (isFile) return dirOrFile.endsWith('.json') ? openSharded(dirOrFile) : openSafetensors(dirOrFile);
  if (fs.existsSync(path.join(dirOrFile, SINGLE_FILE))) return openSafetensors(path.join(dirOrFile, SINGLE_FILE));
  if (fs.existsSync(path.join(dirOrFile, INDEX_FILE))) return openSharded(path.join(dirOrFile, INDEX_FILE));
  throw new InputError(
    dirOrFile,
    SINGLE_FILE,
    `not found (nor ${INDEX_FILE}); expected a Hugging Face checkpoint directory`,
  );
}

/** Reads the index's weight_map: tensor name -> shard file name. */
function readWeightMap(indexFile: string): Map<string, string> {
  const weightMap = readJsonObject(indexFile).weight_map;
  if (!isObject(weightMap))
    throw new InputError(indexFile, 'weight_map', 'missing or not an object of tensor name -> shard file');
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string')
      throw new InputError(indexFile, `weight_map.${name}`, `expected a shard file name, got ${JSON.stringify(shard)}`);
    map.set(name, shard);
  }
  return map;
}

function openSharded(indexFile: string): Checkpoint {
  const weightMap = readWeightMap(indexFile);
  const shards = new Map<string, SafetensorsFile>();
  const closeAll = () => shards.forEach((s) => s.close());
  try {
    for (const shard of new Set(weightMap.values())) {
      const file = path.join(path.dirname(indexFile), shard);
      if (!fs.existsSync(file)) throw new InputError(indexFile, 'weight_map', `shard file ${shard} not found`);
      shards.set(shard, openSafetensors(file));
    }
    for (const [name, shard] of weightMap) {
      if (!shards.get(shard)!.has(name)) {
        throw new InputError(indexFile, name, `listed in weight_map for ${shard} but absent from that shard`);
      }
    }
  } catch (e) {
    closeAll();
    throw e;
  }
  const fileOf = (name: string): SafetensorsFile => {
    const shard = weightMap.get(name);
    if (shard === undefined) throw new InputError(indexFile, name, 'no such tensor in weight_map');
    return shards.get(shard)!;
  };
  return {
    path: indexFile,
    names: () => [...weightMap.keys()],
    has: (name) => weightMap.has(name),
    info: (name) => fileOf(name).info(name),
    readRaw: (name) => fileOf(name).readRaw(name),
    readF32: (name) => fileOf(name).readF32(name),
    readFiniteF32: (name) => fileOf(name).readFiniteF32(name),
    readInt32: (name) => fileOf(name).readInt32(name),
    close: closeAll,
  };
}
