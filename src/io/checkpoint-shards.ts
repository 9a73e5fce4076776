/**
 * A Hugging Face checkpoint split into shards as `save_pretrained(max_shard_size=...)` splits it
 * (huggingface_hub `split_torch_state_dict_into_shards`): tensors in the model's order go into the current shard
 * until the next one would take it past the maximum size, then a new shard starts; a tensor larger than the
 * maximum gets a shard of its own, placed before the shard being filled. One shard is written as `model.safetensors`; more as
 * `model-0000i-of-0000n.safetensors` with `model.safetensors.index.json` (`metadata.total_size`: the tensors'
 * bytes; `weight_map`: tensor name -> shard file, keys sorted). Each shard is written by writeSafetensors, so a
 * TensorToCopy's bytes are made only when its shard reaches it: one tensor is in memory at a time.
 */
import fs from 'node:fs';
import path from 'node:path';
import { INDEX_FILE, SINGLE_FILE } from './checkpoint.js';
import { storedBytes, type TensorToCopy, writeSafetensors } from './safetensors-write.js';

/** transformers' save_pretrained default before 4.47, and what Llama-2-7b-hf was saved with (two shards). */
export const DEFAULT_SHARD_BYTES = 10 * 1000 ** 3;

/** The tensors cut into shards of at most maxBytes, as huggingface_hub cuts them (tensors in order). */
export function splitIntoShards(tensors: readonly TensorToCopy[], maxBytes: number): TensorToCopy[][] {
  const shards: TensorToCopy[][] = [];
  let current: TensorToCopy[] = [];
  let size = 0;
  for (const t of tensors) {
    const bytes = storedBytes(t);
    if (bytes > maxBytes) {
      shards.push([t]); // a dedicated shard, placed before the one being filled
      continue;
    }
    if (size + bytes > maxBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += bytes;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

/** `model-00001-of-00002.safetensors`: the shard file names save_pretrained gives. */
export function shardFileName(i: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(i + 1)}-of-${pad(count)}.safetensors`;
}

/** Writes `tensors` into dir as one file or shards of at most maxBytes plus the index; returns the files' names. */
export function writeShardedCheckpoint(dir: string, tensors: readonly TensorToCopy[], maxBytes: number): string[] {
  const shards = splitIntoShards(tensors, maxBytes);
  if (shards.length <= 1) {
    writeSafetensors(path.join(dir, SINGLE_FILE), shards[0] ?? [], { format: 'pt' });
    return [SINGLE_FILE];
  }
  const files = shards.map((_, i) => shardFileName(i, shards.length));
  const weightMap: [string, string][] = [];
  shards.forEach((shard, i) => {
    writeSafetensors(path.join(dir, files[i]), shard, { format: 'pt' });
    for (const t of shard) weightMap.push([t.name, files[i]]);
  });
  weightMap.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const index = {
    metadata: { total_size: tensors.reduce((n, t) => n + storedBytes(t), 0) },
    weight_map: Object.fromEntries(weightMap),
  };
  fs.writeFileSync(path.join(dir, INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
  return [...files, INDEX_FILE];
}
