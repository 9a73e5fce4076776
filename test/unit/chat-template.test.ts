/**
 * Chat templates (src/serve/chat-template.ts) against strings expanded by hand: ChatML (Qwen2's template,
 * tokenizer_config.json's string form) and Llama 2's (the list-of-named-templates form, "default" chosen, with
 * bos_token / eos_token from AddedToken objects and raise_exception on roles that do not alternate); where the
 * template is found (--chat-template file, chat_template.jinja, tokenizer_config.json; none: null); bad templates
 * as InputErrors naming their file; and the prompt ids of a template that writes the BOS itself: one BOS, as
 * transformers' apply_chat_template tokenizes (add_special_tokens=False).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { loadTokenizer } from '../../src/models/tokenizer.js';
import { chatPromptIds, loadChatTemplate } from '../../src/serve/chat-template.js';
import { tinyStoriesDir } from '../helpers/paths.js';

const CHATML =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}" +
  "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}" +
  "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const LLAMA2 =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}" +
  "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}" +
  '{% set system_message = false %}{% endif %}{% for message in loop_messages %}' +
  "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + " +
  "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A directory holding tokenizer_config.json = `config` and the other files given. */
function modelDir(config: Record<string, unknown>, files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wct-template-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

describe('chat templates', () => {
  it('renders ChatML (a string chat_template) as expanded by hand, the default system turn included', () => {
    const t = loadChatTemplate(modelDir({ chat_template: CHATML }))!;
    const text = t.render([
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Tell me a joke' },
    ]);
    expect(text).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n' +
        '<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nTell me a joke<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('takes "default" of the named templates, with bos_token / eos_token from AddedToken objects', () => {
    const dir = modelDir({
      bos_token: { content: '<s>', special: true },
      eos_token: { content: '</s>', special: true },
      chat_template: [
        { name: 'tool_use', template: 'not this one' },
        { name: 'default', template: LLAMA2 },
      ],
    });
    const t = loadChatTemplate(dir)!;
    expect(t.source).toBe(`${path.join(dir, 'tokenizer_config.json')}: chat_template`);
    const text = t.render([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: ' Hi ' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'More' },
    ]);
    expect(text).toBe('<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello. </s><s>[INST] More [/INST]');
    expect(() => t.render([{ role: 'assistant', content: 'first' }])).toThrow(/roles must alternate/);
    expect(() => t.render([{ role: 'assistant', content: 'first' }])).toThrow(InputError);
  });

  it('finds --chat-template before chat_template.jinja before tokenizer_config.json; none is null', () => {
    expect(loadChatTemplate(modelDir({}))).toBeNull();
    const dir = modelDir({ chat_template: 'config' }, { 'chat_template.jinja': 'jinja file', 'mine.jinja': 'mine' });
    expect(loadChatTemplate(dir)!.render([])).toBe('jinja file');
    expect(loadChatTemplate(dir, path.join(dir, 'mine.jinja'))!.render([])).toBe('mine');
    fs.rmSync(path.join(dir, 'chat_template.jinja'));
    expect(loadChatTemplate(dir)!.render([])).toBe('config');
  });

  it('refuses a list without "default", a chat_template of another type and bad Jinja, naming the file', () => {
    const noDefault = modelDir({ chat_template: [{ name: 'rag', template: 'x' }] });
    expect(() => loadChatTemplate(noDefault)).toThrow(/tokenizer_config\.json: chat_template: .*"default"/);
    expect(() => loadChatTemplate(modelDir({ chat_template: 3 }))).toThrow(/chat_template: expected a string/);
    const dir = modelDir({}, { 'bad.jinja': '{% for %}' });
    expect(() => loadChatTemplate(dir, path.join(dir, 'bad.jinja'))).toThrow(
      /bad\.jinja: chat template: not valid Jinja/,
    );
  });

  it('tokenizes the rendered text without adding a second BOS when the template writes it', () => {
    const config = JSON.parse(fs.readFileSync(path.join(tinyStoriesDir, 'tokenizer_config.json'), 'utf8'));
    const t = loadChatTemplate(
      modelDir({ ...config, chat_template: '{{ bos_token }}user: {{ messages[0].content }}' }),
    )!;
    const tokenizer = loadTokenizer(tinyStoriesDir);
    const ids = Array.from(chatPromptIds(t, tokenizer, [{ role: 'user', content: 'a cat' }]));
    const bos = tokenizer.bosTokenId!;
    expect(ids[0]).toBe(bos);
    expect(ids.filter((id) => id === bos)).toHaveLength(1);
    const byHand = '<|start_story|>user: a cat';
    expect(ids).toEqual(Array.from(tokenizer.encode(byHand, { addSpecialTokens: false })));
    // the tokenizer's normal special tokens would have doubled it
    expect(Array.from(tokenizer.encode(byHand)).slice(0, 2)).toEqual([bos, bos]);
  });
});
