/** `wct eval`: perplexity with the GPTQ protocol (DESIGN.md section 3). */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { perplexity } from '../../eval/perplexity.js';
import { loadEvalText } from '../../io/text-data.js';
import { loadModelDir } from '../model-dir.js';
import { UsageError, progressBar, runHandler } from '../run.js';

interface EvalArgs {
  model: string;
  data: string;
  seqlen?: number;
  batchSize?: number;
  json: boolean;
}

/** Logit floats per forward pass we allow (64 Mi floats = 256 MiB). */
const LOGIT_BUDGET = 64 * 1024 * 1024;
/** GPTQ's C4 evaluation keeps the first 256 chunks' worth of tokens. */
const C4_CHUNKS = 256;

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Perplexity of a model on WikiText-2, C4 or a local text file',
  builder: (y: Argv) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'Hugging Face checkpoint directory' })
      .option('data', { type: 'string', default: 'wikitext2', describe: 'wikitext2 | c4 | path to .txt/.raw/.jsonl' })
      .option('seqlen', { type: 'number', describe: 'Chunk length (default: max_position_embeddings)' })
      .option('batch-size', { type: 'number', describe: 'Chunks per forward pass (default: by memory)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print {"ppl","tokens","chunks","seqlen"} on stdout' }) as unknown as Argv<EvalArgs>,
  handler: runHandler(async (args: ArgumentsCamelCase<EvalArgs>) => {
    const { model, tokenizer } = loadModelDir(args.model);
    const seqlen = args.seqlen ?? model.config.maxPositions;
    if (!(Number.isInteger(seqlen) && seqlen >= 2)) throw new UsageError('--seqlen: expected an integer >= 2');
    if (seqlen > model.config.maxPositions) {
      throw new UsageError(`--seqlen: ${seqlen} exceeds the model's max_position_embeddings ${model.config.maxPositions}`);
    }
    const text = loadEvalText(args.data);
    let ids = tokenizer.encode(text.text);
    if (text.kind === 'c4') ids = ids.subarray(0, C4_CHUNKS * seqlen);
    const batchSize = args.batchSize ?? Math.max(1, Math.floor(LOGIT_BUDGET / (seqlen * model.config.vocabSize)));
    const bar = progressBar('eval');
    const result = perplexity(model, ids, { seqlen, batchSize, onProgress: (d, t) => bar.update(d, t) });
    bar.stop();
    const summary = { ppl: result.ppl, tokens: result.tokens, chunks: result.chunks, seqlen: result.seqlen };
    if (args.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else process.stdout.write(`${args.data}: ppl ${result.ppl.toFixed(3)} (${result.chunks} chunks of ${seqlen} tokens)\n`);
  }),
};
