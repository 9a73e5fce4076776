/**
 * `wct merge`: fold a PEFT LoRA adapter into its full-precision base, W' = W + (alpha / r) B A, and write
 * a plain Hugging Face checkpoint (every tensor in the source's dtype, config and tokenizer copied). A
 * packed base is refused: see MERGE_PACKED_REASON.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { writeHfCheckpoint } from '../../io/checkpoint-write.js';
import { claimOutputDir } from '../../io/output-dir.js';
import { isPackedCheckpoint } from '../../io/packed-checkpoint.js';
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
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'Replace an existing output directory written by this tool',
      }) as unknown as Argv<MergeArgs>,
  handler: runHandler((args: ArgumentsCamelCase<MergeArgs>) => {
    const modelDir = path.resolve(args.model);
    if (!fs.existsSync(modelDir) || !fs.statSync(modelDir).isDirectory()) {
      throw new InputError(
        args.model,
        '--model: not a directory (expected a Hugging Face checkpoint directory with config.json)',
      );
    }
    if (isPackedCheckpoint(modelDir))
      throw new OptionError('--model', `${args.model} is a packed checkpoint: ${MERGE_PACKED_REASON}`);
    const out = claimOutputDir(args.out, {
      option: '--out',
      command: 'wct merge',
      inputs: [args.model, args.adapter],
      mode: 'replace',
      force: args.force,
      note: (line) => process.stderr.write(`${line}\n`),
    });
    const model = loadModel(modelDir);
    const layers = loadAdapter(model, args.adapter);
    mergeLora(model);
    writeHfCheckpoint(out.dir, modelDir, model.parameters(), resolveTensorName, 'wct merge');
    out.finish();
    const { rank, alpha } = layers.values().next().value!;
    process.stdout.write(`wrote ${args.out}: ${layers.size} linears merged (r ${rank}, alpha ${alpha})\n`);
  }),
};
