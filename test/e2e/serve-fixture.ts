/**
 * What the server and chat tests share: the shipped TinyStories-656K (which has no chat template) copied to a
 * temporary directory with a small template added to tokenizer_config.json, that template expanded by hand, and
 * the greedy reply to a rendered prompt computed in process (generate() and the tokenizer, nothing of src/serve).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generate } from '../../src/models/generate.js';
import { loadModel } from '../../src/models/load.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { tinyStoriesDir } from '../helpers/paths.js';

export const TEMPLATE =
  '{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}' +
  '{% if add_generation_prompt %}assistant:{% endif %}';

export interface Message {
  role: string;
  content: string;
}

/** TEMPLATE by hand, with TinyStories-656K's bos_token. */
export function expandByHand(messages: readonly Message[]): string {
  return `<|start_story|>${messages.map((m) => `${m.role}: ${m.content}\n`).join('')}assistant:`;
}

/** A copy of TinyStories-656K whose tokenizer_config.json has TEMPLATE. */
export function modelWithTemplate(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-chat-model-'));
  fs.cpSync(tinyStoriesDir, dir, { recursive: true });
  const file = path.join(dir, 'tokenizer_config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(file, JSON.stringify({ ...config, chat_template: TEMPLATE }, null, 2));
  return dir;
}

/** The greedy continuation of `text` (tokenized as it is: the BOS is in the text), its ids and prompt length. */
export async function greedyReply(text: string, maxTokens: number) {
  const model = loadModel(tinyStoriesDir);
  const tokenizer = loadTokenizer(tinyStoriesDir);
  const prompt = tokenizer.encode(text, { addSpecialTokens: false });
  const ids: number[] = [];
  for await (const id of generate(model, prompt, { maxNewTokens: maxTokens, eosTokenId: tokenizer.eosTokenId }))
    ids.push(id);
  const decode = (tail: number[]) => tokenizer.decode([...prompt, ...tail], { skipSpecialTokens: true });
  return { text: decode(ids).slice(decode([]).length), ids, promptTokens: prompt.length };
}
