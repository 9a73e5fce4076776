/**
 * Chat templates as transformers' `apply_chat_template` applies them: the template is Jinja, rendered with
 * @huggingface/jinja over `messages`, `add_generation_prompt: true` and the tokenizer's special tokens
 * (`bos_token`, `eos_token`, `unk_token`, `pad_token` as tokenizer_config.json names them); the rendered text is
 * tokenized without adding special tokens (transformers passes `add_special_tokens=False`: a template that wants
 * BOS writes `{{ bos_token }}`, and the tokenizer reads special-token strings in the text as their ids).
 *
 * Where the template comes from, first found: the `--chat-template` file, the model directory's
 * `chat_template.jinja`, `chat_template.json` (`{"chat_template": ...}`), tokenizer_config.json's `chat_template`
 * (a string, or transformers' list of `{name, template}`, of which "default" is used).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { InputError } from '../errors.js';
import { readJsonObject, readTextFile } from '../io/json-file.js';
import { tokenContent, type TextTokenizer } from '../io/tokenizer.js';

/** One message of a conversation; fields beyond role and content reach the template as they are. */
export interface ChatMessage {
  role: string;
  content: string;
  [field: string]: unknown;
}

export interface ChatTemplate {
  /** Where the template was read from (a file, or `<file>: chat_template`). */
  readonly source: string;
  /** The prompt text of `messages`, ending in the assistant's turn; a template's raise_exception is an InputError. */
  render(messages: readonly ChatMessage[]): string;
}

const SPECIAL_TOKENS = ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const;

/** The template text of tokenizer_config.json's `chat_template` field, or null when it has none. */
function templateOfConfig(file: string, value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => t?.name === 'default');
    if (typeof named?.template === 'string') return named.template;
    throw new InputError(file, 'chat_template', 'a list of named templates without a "default" one');
  }
  throw new InputError(file, 'chat_template', 'expected a string or a list of {name, template}');
}

/** The template text and where it came from, or null when neither the option nor the model directory has one. */
function findTemplate(dir: string, file: string | undefined): { text: string; source: string } | null {
  if (file !== undefined) return { text: readTextFile(file), source: file };
  const jinja = path.join(dir, 'chat_template.jinja');
  if (fs.existsSync(jinja)) return { text: readTextFile(jinja), source: jinja };
  for (const name of ['chat_template.json', 'tokenizer_config.json']) {
    const json = path.join(dir, name);
    if (!fs.existsSync(json)) continue;
    const text = templateOfConfig(json, readJsonObject(json).chat_template);
    if (text !== null) return { text, source: `${json}: chat_template` };
  }
  return null;
}

/** The special-token strings of tokenizer_config.json the template may use. */
function specialTokens(dir: string): Record<string, string> {
  const file = path.join(dir, 'tokenizer_config.json');
  const config = fs.existsSync(file) ? readJsonObject(file) : {};
  const tokens: Record<string, string> = {};
  for (const name of SPECIAL_TOKENS) {
    const content = tokenContent(config[name]);
    if (content !== null) tokens[name] = content;
  }
  return tokens;
}

/** The chat template of model directory `dir` (or of `file`), null when there is none; a bad template is an InputError. */
export function loadChatTemplate(dir: string, file?: string): ChatTemplate | null {
  const found = findTemplate(dir, file);
  if (found === null) return null;
  const { text, source } = found;
  let template: Template;
  try {
    template = new Template(text);
  } catch (e) {
    throw new InputError(source, 'chat template', `not valid Jinja (${(e as Error).message})`);
  }
  const tokens = specialTokens(dir);
  return {
    source,
    render(messages) {
      try {
        return template.render({ messages, add_generation_prompt: true, ...tokens });
      } catch (e) {
        throw new InputError(source, 'chat template', (e as Error).message);
      }
    },
  };
}

/** The prompt ids of a conversation: the rendered template tokenized without adding special tokens. */
export function chatPromptIds(template: ChatTemplate, tokenizer: TextTokenizer, messages: readonly ChatMessage[]) {
  return tokenizer.encode(template.render(messages), { addSpecialTokens: false });
}

/** What to say when a model has no template: the option that gives one. */
export function noTemplateProblem(dir: string): string {
  return `the model ${dir} has no chat template (tokenizer_config.json chat_template); give one with --chat-template FILE`;
}
