/**
 * `wct serve` through the official `openai` client and raw HTTP, on TinyStories-656K (a copy with a chat
 * template, test/e2e/serve-fixture.ts): the model list; completions equal to `wct generate --json` with the same
 * prompt, seed, temperature, top_p and token count, whole and streamed, ids included; usage counts; a stop
 * string; the chat template's greedy reply, whole and streamed; 400 / 404 / 405 / 413 with OpenAI's error body,
 * the server answering the next request after each; a client that disconnects stops its decoding; a model
 * without a template refuses chat naming --chat-template; SIGTERM and SIGINT exit 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { cliPath, wct } from '../helpers/cli.js';
import { tinyStoriesDir } from '../helpers/paths.js';
import { expandByHand, greedyReply, modelWithTemplate } from './serve-fixture.js';

const MAX_BODY = 4096;

interface Server {
  child: ChildProcess;
  url: string;
  /** Everything the server wrote on stderr so far. */
  log: () => string;
  exited: Promise<number | null>;
}

/** Starts `wct serve` on a free port; resolves once it says where it listens. */
function startServer(model: string): Promise<Server> {
  const args = [cliPath, 'serve', '--model', model, '--port', '0', '--max-body-bytes', String(MAX_BODY)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m !== null) resolve({ child, url: m[1], log: () => stderr, exited });
    });
    exited.then((code) => reject(new Error(`wct serve exited ${code}:\n${stderr}`)));
  });
}

/** `wct generate --json` on the shipped model. */
function generated(args: string[]): { text: string; ids: number[] } {
  const r = wct(['generate', '--model', tinyStoriesDir, ...args, '--json']);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

async function post(server: Server, path: string, body: string) {
  const r = await fetch(`${server.url}/v1${path}`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });
  return { status: r.status, body: (await r.json()) as { error: { message: string } } };
}

function expectErrorBody(body: unknown, param: string | null): void {
  const { error } = body as { error: Record<string, unknown> };
  expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(error.type).toBe('invalid_request_error');
  expect(error.param).toBe(param);
  expect(typeof error.message).toBe('string');
}

const PROMPT = 'Once upon a time';
const SAMPLED = { prompt: PROMPT, seed: 11, temperature: 0.8, top_p: 0.9, max_tokens: 24 };
const tokenizer = loadTokenizer(tinyStoriesDir);
const promptTokens = tokenizer.encode(PROMPT).length;

let model: string;
let server: Server;
let client: OpenAI;
let reference: { text: string; ids: number[] };

beforeAll(async () => {
  model = modelWithTemplate();
  server = await startServer(model);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
  reference = generated([
    '--prompt',
    PROMPT,
    '--seed',
    '11',
    '--temperature',
    '0.8',
    '--top-p',
    '0.9',
    '--max-new-tokens',
    '24',
  ]);
}, 30_000);

afterAll(() => {
  if (server.child.exitCode === null) server.child.kill('SIGKILL');
  fs.rmSync(model, { recursive: true, force: true });
});

describe('wct serve: completions', () => {
  it('--help names the endpoints and says requests are queued, one decoding at a time', () => {
    const r = wct(['serve', '--help']);
    expect(r.status, r.stderr).toBe(0);
    for (const s of ['/v1/chat/completions', 'one request decoding at a time', '--chat-template', '--max-body-bytes'])
      expect(r.stdout.replace(/\s+/g, ' ')).toContain(s); // yargs wraps the text
  });

  it('lists the served model under --model as given', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([model]);
  });

  it('a sampled completion equals wct generate with the same seed, ids and usage included', async () => {
    const r = await client.completions.create({ model, ...SAMPLED, return_token_ids: true } as never);
    const choice = r.choices[0] as unknown as { text: string; token_ids: number[]; finish_reason: string };
    expect(reference.ids).toHaveLength(24);
    expect(choice.token_ids).toEqual(reference.ids);
    expect(choice.text).toBe(reference.text);
    expect(choice.finish_reason).toBe('length');
    expect(r.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: 24, total_tokens: promptTokens + 24 });
    // the same prompt as token ids
    const ids = Array.from(tokenizer.encode(PROMPT));
    const byIds = await client.completions.create({ model, ...SAMPLED, prompt: ids });
    expect(byIds.choices[0].text).toBe(reference.text);
  });

  it('streams the same tokens and text, with usage in the last chunk', async () => {
    const stream = await client.completions.create({
      model,
      ...SAMPLED,
      stream: true,
      stream_options: { include_usage: true },
      return_token_ids: true,
    } as never);
    let text = '';
    const ids: number[] = [];
    const finish: (string | null)[] = [];
    let usage: unknown = null;
    for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) {
      for (const c of chunk.choices as unknown as { text: string; token_ids?: number[]; finish_reason: string }[]) {
        text += c.text;
        ids.push(...(c.token_ids ?? []));
        finish.push(c.finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(ids).toEqual(reference.ids);
    expect(text).toBe(reference.text);
    expect(finish.at(-1)).toBe('length');
    expect(finish.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: 24, total_tokens: promptTokens + 24 });
  });

  it('concurrent requests (queued) each get the answer they would get alone', async () => {
    const texts = await Promise.all(
      [0, 1, 2].map(async () => {
        let text = '';
        for await (const chunk of await client.completions.create({ model, ...SAMPLED, stream: true }))
          text += chunk.choices[0]?.text ?? '';
        return text;
      }),
    );
    expect(texts).toEqual([reference.text, reference.text, reference.text]);
  });

  it('cuts the text before a stop string, whole and streamed, with finish_reason stop', async () => {
    const greedy = generated(['--prompt', PROMPT, '--max-new-tokens', '40']);
    const stop = ' named';
    const at = greedy.text.indexOf(stop);
    expect(at).toBeGreaterThan(0);
    const body = { model, prompt: PROMPT, temperature: 0, max_tokens: 40, stop: [stop, 'no such text'] };
    const whole = await client.completions.create(body);
    expect(whole.choices[0].text).toBe(greedy.text.slice(0, at));
    expect(whole.choices[0].finish_reason).toBe('stop');
    // the completion ends with the token that completed the stop string
    const ids = tokenizer.encode(PROMPT);
    const tokensToStop = greedy.ids.findIndex((_, i) => {
      const text = tokenizer.decode([...ids, ...greedy.ids.slice(0, i + 1)], { skipSpecialTokens: true });
      return text.slice(PROMPT.length).includes(stop);
    });
    expect(whole.usage?.completion_tokens).toBe(tokensToStop + 1);
    let streamed = '';
    for await (const chunk of await client.completions.create({ ...body, stop, stream: true })) {
      streamed += chunk.choices[0]?.text ?? '';
    }
    expect(streamed).toBe(greedy.text.slice(0, at));
  });
});

describe('wct serve: chat', () => {
  const messages = [
    { role: 'system' as const, content: 'Tell a story.' },
    { role: 'user' as const, content: 'A story about a cat' },
  ];

  it('replies with the greedy continuation of the rendered template, whole and streamed', async () => {
    const expected = await greedyReply(expandByHand(messages), 30);
    const r = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 30 });
    expect(r.choices[0].message).toMatchObject({ role: 'assistant', content: expected.text });
    expect(r.usage).toEqual({
      prompt_tokens: expected.promptTokens,
      completion_tokens: expected.ids.length,
      total_tokens: expected.promptTokens + expected.ids.length,
    });
    const stream = await client.chat.completions.create({
      model,
      messages,
      temperature: 0,
      max_tokens: 30,
      stream: true,
    });
    const deltas: OpenAI.Chat.ChatCompletionChunk.Choice.Delta[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      deltas.push(chunk.choices[0].delta);
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    expect(deltas[0].role).toBe('assistant');
    expect(deltas.map((d) => d.content ?? '').join('')).toBe(expected.text);
    expect(finish).toBe(expected.ids.length < 30 ? 'stop' : 'length');
  });
});

describe('wct serve: bad requests', () => {
  it('answers 400 with an OpenAI error body for bad JSON and wrong types, then serves the next request', async () => {
    const bad = await post(server, '/completions', '{"prompt": "Once", "max_tokens": ');
    expect(bad.status).toBe(400);
    expectErrorBody(bad.body, null);
    const wrongType = await post(server, '/completions', JSON.stringify({ prompt: PROMPT, max_tokens: 'ten' }));
    expect(wrongType.status).toBe(400);
    expectErrorBody(wrongType.body, 'max_tokens');
    const twoChoices = await post(server, '/chat/completions', JSON.stringify({ messages: [], n: 2 }));
    expect(twoChoices.status).toBe(400);
    const outOfVocab = await post(server, '/completions', JSON.stringify({ prompt: [1, 2048] }));
    expect(outOfVocab.status).toBe(400);
    expectErrorBody(outOfVocab.body, 'prompt.1');
    const tooLong = await post(server, '/completions', JSON.stringify({ prompt: PROMPT, max_tokens: 512 }));
    expect(tooLong.status).toBe(400);
    expectErrorBody(tooLong.body, 'max_tokens');
    expect(tooLong.body.error.message).toContain('512 positions');
    const after = await client.completions.create({ model, ...SAMPLED });
    expect(after.choices[0].text).toBe(reference.text);
  });

  it('refuses another model name (404), an oversize body (413), an unknown path (404) and a wrong method (405)', async () => {
    await expect(client.completions.create({ model: 'gpt-4', prompt: PROMPT })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    });
    const big = await post(server, '/completions', JSON.stringify({ prompt: 'a'.repeat(MAX_BODY) }));
    expect(big.status).toBe(413);
    expectErrorBody(big.body, null);
    expect((await post(server, '/embeddings', '{}')).status).toBe(404);
    const get = await fetch(`${server.url}/v1/completions`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect((await client.models.list()).data).toHaveLength(1);
  });

  it('stops decoding when the client disconnects mid-stream', async () => {
    const abort = new AbortController();
    const body = JSON.stringify({ prompt: PROMPT, temperature: 2, seed: 3, max_tokens: 500, stream: true });
    const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', body, signal: abort.signal });
    await r.body!.getReader().read();
    abort.abort();
    await expect
      .poll(() => server.log(), { timeout: 5000 })
      .toMatch(/stopped after (\d+) tokens \(the client disconnected\)/);
    const stoppedAfter = Number(/stopped after (\d+) tokens/.exec(server.log())![1]);
    expect(stoppedAfter).toBeLessThan(500);
    expect((await client.completions.create({ model, ...SAMPLED })).choices[0].text).toBe(reference.text);
  });
});

describe('wct serve: shutdown', () => {
  it('a model without a chat template refuses chat naming --chat-template; SIGINT exits 0', async () => {
    const plain = await startServer(tinyStoriesDir);
    const r = await post(plain, '/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }));
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('--chat-template');
    plain.child.kill('SIGINT');
    expect(await plain.exited).toBe(0);
  });

  it('SIGTERM aborts the stream in flight with an error event and exits 0', async () => {
    const body = JSON.stringify({ prompt: PROMPT, temperature: 2, seed: 3, max_tokens: 500, stream: true });
    const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', body });
    const reader = r.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first.startsWith('data: {')).toBe(true);
    server.child.kill('SIGTERM');
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      rest += new TextDecoder().decode(chunk.value);
    expect(rest).toContain('"code":"shutting_down"');
    expect(rest).not.toContain('[DONE]');
    expect(await server.exited).toBe(0);
    expect(server.log()).toMatch(/SIGTERM: shutting down/);
    expect(server.log()).toMatch(/stopped after \d+ tokens \(the server is shutting down\)/);
  });
});
