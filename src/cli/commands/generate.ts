/** `wct generate`: stream a continuation of a prompt, reporting tokens/s. */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { generate } from '../../models/generate.js';
import { TextStream } from '../../models/text-stream.js';
import { addModelOptions, loadModelDir } from '../model-dir.js';
import { addNumberOptions, checkNumberOptions, intOption, MAX_SEED, type NumberOption } from '../number-options.js';
import { runHandler } from '../run.js';
import { addDeviceOption, withDevice } from '../device-option.js';
import type { DeviceChoice } from '../../gpu/device.js';
import type { TextTokenizer } from '../../io/tokenizer.js';
import type { CausalLM } from '../../models/model.js';

interface GenerateArgs {
  model: string;
  deltas?: string;
  adapter?: string;
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  json: boolean;
  device: DeviceChoice;
}

// --max-new-tokens has no bound of its own: the prompt plus it must fit the model's positions (src/models/generate.ts)
export const SAMPLING_OPTIONS: Record<string, NumberOption> = {
  'max-new-tokens': intOption('Tokens to generate', 1, undefined, 64),
  temperature: { describe: 'Sampling temperature; 0 = greedy', default: 0, min: 0 },
  'top-p': { describe: 'Nucleus sampling mass', default: 1, min: 0, minExclusive: true, max: 1 },
  seed: intOption('RNG seed for sampling', 0, MAX_SEED, 0),
};

export const generateCommand: CommandModule<object, GenerateArgs> = {
  command: 'generate',
  describe: 'Generate text from a prompt (greedy when --temperature is 0)',
  builder: (y: Argv) =>
    addDeviceOption(addModelOptions(addNumberOptions(y, SAMPLING_OPTIONS)))
      .option('prompt', { type: 'string', default: '', describe: 'Prompt text (empty: start from BOS)' })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print {"text","ids","tokens_per_s"} on stdout instead of streaming',
      }) as unknown as Argv<GenerateArgs>,
  handler: runHandler(async (args: ArgumentsCamelCase<GenerateArgs>) => {
    checkNumberOptions(args, SAMPLING_OPTIONS);
    const { model, tokenizer } = loadModelDir(args.model, args.deltas, args.adapter);
    await withDevice(
      args.device,
      (line) => process.stderr.write(`${line}\n`),
      async (ctx) => {
        await model.toDevice(ctx);
        await generateText(args, model, tokenizer);
      },
    );
  }),
};

async function generateText(args: ArgumentsCamelCase<GenerateArgs>, model: CausalLM, tokenizer: TextTokenizer) {
  const prompt = tokenizer.encode(args.prompt);
  const started = performance.now();
  const text = new TextStream(tokenizer, prompt);
  const stream = generate(model, prompt, {
    maxNewTokens: args.maxNewTokens,
    temperature: args.temperature,
    topP: args.topP,
    seed: args.seed,
    eosTokenId: tokenizer.eosTokenId,
  });
  if (!args.json) process.stdout.write(args.prompt);
  for await (const id of stream) {
    const piece = text.push(id);
    if (!args.json) process.stdout.write(piece);
  }
  const ids = text.tokens();
  const seconds = (performance.now() - started) / 1000;
  const tokensPerS = ids.length / seconds;
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ text: text.text(), ids, tokens_per_s: tokensPerS })}\n`);
  } else {
    process.stdout.write('\n');
    process.stderr.write(`${ids.length} tokens in ${seconds.toFixed(2)} s (${tokensPerS.toFixed(1)} tokens/s)\n`);
  }
}
