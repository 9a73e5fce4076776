/**
 * `wct chat`: a conversation with the model in the terminal, through its chat template
 * (src/serve/chat-template.ts), each reply streamed as it is generated. One line is one user turn; /reset
 * clears the conversation, /exit or the end of input (Ctrl-D) quits, Ctrl-C stops a reply (or quits between
 * replies). Reads piped input as well as a terminal; the prompt "> " is shown on a terminal only.
 */
import readline from 'node:readline';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { asUserError, OptionError } from '../../errors.js';
import { chatPromptIds, type ChatMessage, noTemplateProblem } from '../../serve/chat-template.js';
import { complete } from '../../serve/completion.js';
import type { Engine } from '../../serve/prepare.js';
import { addNumberOptions, checkNumberOptions } from '../number-options.js';
import { runHandler } from '../run.js';
import { SAMPLING_OPTIONS } from './generate.js';
import { addChatModelOptions, type ChatModelArgs, withEngine } from './serve.js';

interface ChatArgs extends ChatModelArgs {
  system?: string;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed: number;
}

/** The conversation so far, from the --system message on. */
function freshConversation(system: string | undefined): ChatMessage[] {
  return system === undefined ? [] : [{ role: 'system', content: system }];
}

/** Streams the model's reply to `messages` on stdout; resolves with its text. */
async function reply(engine: Engine, args: ChatArgs, messages: ChatMessage[], signal: AbortSignal): Promise<string> {
  const prompt = chatPromptIds(engine.template!, engine.tokenizer, messages);
  const sampling = {
    maxTokens: args.maxNewTokens,
    temperature: args.temperature,
    topP: args.topP,
    seed: args.seed,
    stop: [],
  };
  const result = await complete(engine.model, engine.tokenizer, prompt, sampling, signal, (piece) =>
    process.stdout.write(piece.text),
  );
  process.stdout.write('\n');
  return result.text;
}

async function converse(engine: Engine, args: ChatArgs): Promise<void> {
  const terminal = process.stdin.isTTY === true;
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal });
  let messages = freshConversation(args.system);
  let replying: AbortController | null = null;
  rl.on('SIGINT', () => (replying === null ? rl.close() : replying.abort()));
  const ask = () => terminal && rl.prompt();
  ask();
  for await (const line of rl) {
    const command = line.trim();
    if (command === '/exit') break;
    if (command === '/reset') messages = freshConversation(args.system);
    else if (command !== '') {
      replying = new AbortController();
      const turn: ChatMessage[] = [...messages, { role: 'user', content: line }];
      try {
        messages = [...turn, { role: 'assistant', content: await reply(engine, args, turn, replying.signal) }];
      } catch (e) {
        const user = asUserError(e);
        if (user === null) throw e;
        process.stderr.write(`error: ${user.message} (/reset starts over)\n`);
      }
      replying = null;
    }
    ask();
  }
  rl.close();
}

export const chatCommand: CommandModule<object, ChatArgs> = {
  command: 'chat',
  describe: 'Chat with the model in the terminal through its chat template (one line per turn; /reset, /exit)',
  builder: (y: Argv) =>
    addChatModelOptions(addNumberOptions(y, SAMPLING_OPTIONS))
      .option('system', { type: 'string', describe: 'A system message opening the conversation' })
      .epilog(
        'Each line of input is a user turn; the reply streams on stdout. /reset clears the conversation, /exit or ' +
          "Ctrl-D quits. --max-new-tokens bounds each reply; the conversation must fit the model's positions.",
      ) as unknown as Argv<ChatArgs>,
  handler: runHandler(async (args: ArgumentsCamelCase<ChatArgs>) => {
    checkNumberOptions(args, SAMPLING_OPTIONS);
    await withEngine(args, async (engine) => {
      if (engine.template === null) throw new OptionError('--chat-template', noTemplateProblem(args.model));
      await converse(engine, args);
    });
  }),
};
