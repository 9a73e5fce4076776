/**
 * `wct serve`: the model behind an OpenAI-compatible HTTP API (src/serve/server.ts). One model, one request
 * decoding at a time; the others wait in a queue. Also the model loading `wct chat` shares: the --model options,
 * --device and --chat-template.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { DeviceChoice } from '../../gpu/device.js';
import { OptionError } from '../../errors.js';
import { loadChatTemplate } from '../../serve/chat-template.js';
import type { Engine } from '../../serve/prepare.js';
import { createApiServer } from '../../serve/server.js';
import { addDeviceOption, withDevice } from '../device-option.js';
import { addModelOptions, loadModelDir } from '../model-dir.js';
import { addNumberOptions, checkNumberOptions, intOption, type NumberOption } from '../number-options.js';
import { runHandler } from '../run.js';
import { checkpointDirArg } from './merge.js';

/** The options of a command that runs a chat model: --model (+ --deltas / --adapter), --device, --chat-template. */
export interface ChatModelArgs {
  model: string;
  deltas?: string;
  adapter?: string;
  device: DeviceChoice;
  chatTemplate?: string;
}

interface ServeArgs extends ChatModelArgs {
  port: number;
  host: string;
  maxBodyBytes: number;
}

const NUMBERS: Record<string, NumberOption> = {
  port: intOption('TCP port to listen on (0: any free port, said on stderr)', 0, 65535, 8080),
  'max-body-bytes': intOption('Largest request body accepted; a larger one is answered 413', 1, undefined, 1 << 20),
};

export function addChatModelOptions<T>(y: Argv<T>): Argv<T> {
  return addDeviceOption(addModelOptions(y)).option('chat-template', {
    type: 'string',
    describe: "Jinja chat template file (default: the model's, from tokenizer_config.json chat_template)",
  }) as unknown as Argv<T>;
}

/** The model, its tokenizer and chat template (null when it has none), loaded from the --model options. */
function loadEngine(args: ChatModelArgs): Engine {
  const dir = checkpointDirArg(args.model);
  const template = loadChatTemplate(dir, args.chatTemplate);
  const { model, tokenizer } = loadModelDir(args.model, args.deltas, args.adapter);
  return { id: args.model, model, tokenizer, template };
}

/** Runs `fn` with the engine of the --model options on --device (the device's note, if any, on stderr). */
export async function withEngine(args: ChatModelArgs, fn: (engine: Engine) => Promise<void>): Promise<void> {
  const engine = loadEngine(args);
  await withDevice(args.device, say, async (ctx) => {
    await engine.model.toDevice(ctx);
    await fn(engine);
  });
}

function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Listens on host:port; a port in use or not permitted is an OptionError naming --port, other failures --host. */
function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const option = e.code === 'EADDRINUSE' || e.code === 'EACCES' ? '--port' : '--host';
      reject(new OptionError(option, `cannot listen on ${host}:${port} (${e.code ?? e.message})`));
    });
    server.listen(port, host, () => resolve(server.address() as AddressInfo));
  });
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: 'Serve the model over an OpenAI-compatible HTTP API (one request decodes at a time; the rest queue)',
  builder: (y: Argv) =>
    addChatModelOptions(addNumberOptions(y, NUMBERS))
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on' })
      .epilog(
        'Endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (stream: true for server-sent ' +
          'events). Requests are queued: one model, one request decoding at a time. A request names the model ' +
          'as --model was given, or no model. SIGINT / SIGTERM stop accepting, abort the request in flight and ' +
          'exit 0.',
      ) as unknown as Argv<ServeArgs>,
  handler: runHandler(async (args: ArgumentsCamelCase<ServeArgs>) => {
    checkNumberOptions(args, NUMBERS);
    await withEngine(args, async (engine) => {
      const api = createApiServer(engine, { maxBodyBytes: args.maxBodyBytes, log: say });
      const address = await listen(api.server, args.port, args.host);
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      if (engine.template === null) say('no chat template: /v1/chat/completions answers 400 (see --chat-template)');
      say(`serving ${engine.id}; listening on http://${host}:${address.port}`);
      const signal = await untilSignal();
      say(`${signal}: shutting down`);
      await api.close();
    });
    process.exit(0);
  }),
};
