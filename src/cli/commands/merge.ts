/**
 * `wct merge`: fold a PEFT LoRA adapter into its full-precision base, W' = W + (alpha / r) B A, and write
 * a plain Hugging Face checkpoint (every tensor in the source's dtype, config and tokenizer copied). A
 * packed base is refused: see MERGE_PACKED_REASON. Also the pieces `wct export` shares with it: --force, the
 * --model directory and the claimed --out.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { writeHfCheckpoint } from '../../io/checkpoint-write.js';
import { claimOutputDir } from '../../io/output-dir.js';
import { isPackedCheckpoint } from '../../io/packed-checkpoint.js';
import { resolveModelPath } from '../../io/hf-cache.js';
import { InputError, OptionError } from '../../errors.js';
import { resolveTensorName } from '../../models/checkpoint-tensors.js';
import { loadModel } from '../../models/load.js';
import { loadAdapter, mergeLora, MERGE_PACKED_REASON } from '../../models/lora.js';
import { runHandler } from '../run.js';

interface MergeArgs {
  model: string;
  adapter: string;
  out: string;
  force: boolean;
}

/** The --force of a command that replaces a checkpoint directory (wct merge, wct export). */
export const FORCE_OPTION = {
  type: 'boolean',
  default: false,
  describe: 'Replace an existing output directory written by this tool',
} as const;

/** --model as an absolute directory (a Hugging Face id: src/io/hf-cache.ts); an InputError when it is not one. */
export function checkpointDirArg(model: string): string {
  const dir = path.resolve(resolveModelPath(model)); // a Hugging Face id: its snapshot in the local cache
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new InputError(
      model,
      '--model: not a directory (expected a Hugging Face checkpoint directory with config.json)',
    );
  }
  return dir;
}

/**
 * Claims --out for `command` (a `replace` output, src/io/output-dir.ts), runs `write` with its real path, then
 * releases the claim: saying so when a marked directory was replaced, silently when `write` failed.
 */
export function writeClaimedOut<T>(
  args: { out: string; force: boolean },
  command: string,
  inputs: readonly (string | undefined)[],
  write: (dir: string) => T,
): T {
  const out = claimOutputDir(args.out, {
    option: '--out',
    command,
    inputs,
    mode: 'replace',
    force: args.force,
    note: (line) => process.stderr.write(`${line}\n`),
  });
  let result: T;
  try {
    result = write(out.dir);
  } catch (e) {
    out.release();
    throw e;
  }
  out.finish();
  return result;
}

export const mergeCommand: CommandModule<object, MergeArgs> = {
  command: 'merge',
  describe: 'Merge a LoRA adapter into its full-precision base and write a Hugging Face checkpoint',
  builder: (y: Argv) =>
    y
      .option('model', {
        type: 'string',
        demandOption: true,
        describe: 'Full-precision Hugging Face checkpoint directory (the adapter’s base)',
      })
      .option('adapter', {
        type: 'string',
        demandOption: true,
        describe: 'PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors)',
      })
      .option('out', { type: 'string', demandOption: true, describe: 'Output directory for the merged checkpoint' })
      .option('force', FORCE_OPTION) as unknown as Argv<MergeArgs>,
  handler: runHandler((args: ArgumentsCamelCase<MergeArgs>) => {
    const modelDir = checkpointDirArg(args.model);
    if (isPackedCheckpoint(modelDir))
      throw new OptionError('--model', `${args.model} is a packed checkpoint: ${MERGE_PACKED_REASON}`);
    const layers = writeClaimedOut(args, 'wct merge', [modelDir, args.adapter], (dir) => {
      const model = loadModel(modelDir);
      const adapted = loadAdapter(model, args.adapter);
      mergeLora(model);
      writeHfCheckpoint(dir, modelDir, model.parameters(), resolveTensorName, 'wct merge');
      return adapted;
    });
    const { rank, alpha } = layers.values().next().value!;
    process.stdout.write(`wrote ${args.out}: ${layers.size} linears merged (r ${rank}, alpha ${alpha})\n`);
  }),
};
