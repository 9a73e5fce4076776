/** `wct eval`: perplexity with the GPTQ protocol (docs/ARCHITECTURE.md section 3). */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { evaluateData } from '../../eval/evaluate-data.js';
import { addModelOptions, loadModelDir } from '../model-dir.js';
import { dataSetName } from '../../util/data-set-name.js';
import { Terminal } from '../progress.js';
import { addNumberOptions, checkNumberOptions, intOption, type NumberOption } from '../number-options.js';
import { runHandler } from '../run.js';
import { addDeviceOption, withDevice } from '../device-option.js';
import type { DeviceChoice } from '../../gpu/device.js';

interface EvalArgs {
  model: string;
  deltas?: string;
  adapter?: string;
  data: string;
  seqlen?: number;
  batchSize?: number;
  json: boolean;
  device: DeviceChoice;
}

// --seqlen's upper bound is the model's positions (src/eval/evaluate-data.ts)
const NUMBERS: Record<string, NumberOption> = {
  seqlen: intOption('Chunk length (default: max_position_embeddings)', 2),
  'batch-size': intOption('Chunks per forward pass (default: by memory)', 1),
};

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Perplexity of a model on WikiText-2, C4 or a local text file',
  builder: (y: Argv) =>
    addDeviceOption(addModelOptions(addNumberOptions(y, NUMBERS)))
      .option('data', { type: 'string', default: 'wikitext2', describe: 'wikitext2 | c4 | path to .txt/.raw/.jsonl' })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print {"ppl","tokens","chunks","seqlen","peak_rss_mib"} on stdout',
      }) as unknown as Argv<EvalArgs>,
  handler: runHandler(async (args: ArgumentsCamelCase<EvalArgs>) => {
    checkNumberOptions(args, NUMBERS);
    const { model, tokenizer } = loadModelDir(args.model, args.deltas, args.adapter);
    const terminal = new Terminal();
    const result = await withDevice(
      args.device,
      (line) => terminal.log(line),
      async (ctx) => {
        await model.toDevice(ctx);
        const phase = terminal.start(`evaluation ${dataSetName(args.data)}`);
        return evaluateData(model, tokenizer, args.data, { seqlen: args.seqlen, batchSize: args.batchSize, phase });
      },
    );
    const peakRssMiB = process.resourceUsage().maxRSS / 1024;
    const summary = {
      ppl: result.ppl,
      tokens: result.tokens,
      chunks: result.chunks,
      seqlen: result.seqlen,
      peak_rss_mib: peakRssMiB,
    };
    if (args.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else
      process.stdout.write(
        `${dataSetName(args.data)} perplexity of ${args.model}${args.deltas || args.adapter ? ` with ${args.deltas ?? args.adapter}` : ''} ` +
          `(${args.data}, ${result.chunks} chunks of ${result.seqlen} tokens): ${result.ppl.toFixed(3)}\n`,
      );
  }),
};
