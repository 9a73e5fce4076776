/**
 * `wct chat` with piped stdin on TinyStories-656K with a chat template (test/e2e/serve-fixture.ts): two turns,
 * each reply the greedy continuation of the whole conversation through the template expanded by hand; /reset
 * starts the conversation over (the same first reply again); /exit quits before the lines after it; a model
 * without a template is refused naming --chat-template.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, expectOneLineError, wct } from '../helpers/cli.js';
import { tinyStoriesDir } from '../helpers/paths.js';
import { expandByHand, greedyReply, type Message, modelWithTemplate } from './serve-fixture.js';

const MAX = 20;
const SYSTEM = 'Tell a story.';

let model: string;
beforeAll(() => {
  model = modelWithTemplate();
});
afterAll(() => fs.rmSync(model, { recursive: true, force: true }));

function chat(input: string) {
  const args = [cliPath, 'chat', '--model', model, '--max-new-tokens', String(MAX), '--system', SYSTEM];
  const r = spawnSync(process.execPath, args, { input, encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe('wct chat', () => {
  it('keeps the conversation over two turns; /reset starts over; /exit quits', async () => {
    const turns = ['A story about a cat', 'What happened next?'];
    const conversation: Message[] = [{ role: 'system', content: SYSTEM }];
    const replies: string[] = [];
    for (const turn of turns) {
      conversation.push({ role: 'user', content: turn });
      const { text } = await greedyReply(expandByHand(conversation), MAX);
      conversation.push({ role: 'assistant', content: text });
      replies.push(text);
    }
    expect(replies[0]).not.toBe(replies[1]);
    const out = chat(`${turns[0]}\n${turns[1]}\n/reset\n${turns[0]}\n/exit\n${turns[1]}\n`);
    expect(out).toBe(`${replies[0]}\n${replies[1]}\n${replies[0]}\n`);
  });

  it('--help says how to reset and quit', () => {
    const r = wct(['chat', '--help']);
    expect(r.status, r.stderr).toBe(0);
    for (const s of ['/reset', '/exit', 'Ctrl-D', '--system', '--chat-template'])
      expect(r.stdout.replace(/\s+/g, ' ')).toContain(s); // yargs wraps the text
  });

  it('refuses a model without a chat template, naming --chat-template', () => {
    const r = wct(['chat', '--model', tinyStoriesDir]);
    expect(expectOneLineError(r)).toContain('--chat-template');
  });
});
