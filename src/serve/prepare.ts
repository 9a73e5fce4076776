/**
 * From a validated request body to what the decoder runs: the prompt ids (a completion's prompt tokenized with
 * the tokenizer's normal special tokens, as `wct generate` does; a chat rendered through the chat template,
 * src/serve/chat-template.ts) and the sampling. Defaults are OpenAI's: temperature 1, top_p 1, a random seed,
 * max_tokens 16 for a completion and the rest of the model's positions for a chat. A prompt that with
 * max_tokens does not fit the model's positions is a 400.
 */
import { randomInt } from 'node:crypto';
import { InputError } from '../errors.js';
import { MAX_SEED } from '../recipe/schema.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/model.js';
import { chatPromptIds, noTemplateProblem, type ChatMessage, type ChatTemplate } from './chat-template.js';
import type { Sampling } from './completion.js';
import { HttpError } from './http-error.js';
import type { ChatRequest, CompletionRequest } from './request-schema.js';

/** What the server runs its requests with. */
export interface Engine {
  /** The model's id in the API: --model as given. */
  id: string;
  model: CausalLM;
  tokenizer: TextTokenizer;
  template: ChatTemplate | null;
}

export interface Prepared {
  prompt: Int32Array;
  sampling: Sampling;
  stream: boolean;
  includeUsage: boolean;
  returnTokenIds: boolean;
}

const COMPLETION_MAX_TOKENS = 16;

/** A request naming another model is a 404, as OpenAI answers it; one naming none gets the served model. */
export function checkModel(engine: Engine, model: string | undefined): void {
  if (model !== undefined && model !== engine.id)
    throw new HttpError(
      404,
      `The model '${model}' does not exist; this server serves '${engine.id}'`,
      'model',
      'model_not_found',
    );
}

function completionPrompt(engine: Engine, prompt: CompletionRequest['prompt']): Int32Array {
  if (typeof prompt === 'string') return engine.tokenizer.encode(prompt);
  if (typeof prompt[0] === 'string') return engine.tokenizer.encode(prompt[0]);
  const ids = Int32Array.from(prompt as number[]);
  const vocab = engine.model.config.vocabSize;
  const bad = ids.findIndex((id) => id >= vocab);
  if (bad >= 0) {
    const problem = `token id ${ids[bad]} is not below the vocabulary size ${vocab}`;
    throw new HttpError(400, `prompt.${bad}: ${problem}`, `prompt.${bad}`, 'invalid_value');
  }
  return ids;
}

function chatMessages(messages: ChatRequest['messages']): ChatMessage[] {
  return messages.map((m) => ({
    ...m,
    content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((part) => part.text).join(''),
  }));
}

function chatPrompt(engine: Engine, messages: ChatRequest['messages']): Int32Array {
  if (engine.template === null) throw new HttpError(400, noTemplateProblem(engine.id), 'messages', 'no_chat_template');
  try {
    return chatPromptIds(engine.template, engine.tokenizer, chatMessages(messages));
  } catch (e) {
    if (e instanceof InputError) throw new HttpError(400, e.message, 'messages');
    throw e;
  }
}

function prepare(
  engine: Engine,
  body: CompletionRequest | ChatRequest,
  prompt: Int32Array,
  maxTokens: number | null | undefined,
): Prepared {
  const limit = engine.model.config.maxPositions;
  if (prompt.length === 0) throw new HttpError(400, 'the prompt has no tokens', 'prompt');
  const max = maxTokens ?? COMPLETION_MAX_TOKENS;
  if (prompt.length + max > limit) {
    throw new HttpError(
      400,
      `the prompt's ${prompt.length} tokens + max_tokens ${max} exceed the model's ${limit} positions`,
      'max_tokens',
      'context_length_exceeded',
    );
  }
  return {
    prompt,
    sampling: {
      maxTokens: max,
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      seed: body.seed ?? randomInt(MAX_SEED + 1),
      stop: typeof body.stop === 'string' ? [body.stop] : (body.stop ?? []),
    },
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
    returnTokenIds: body.return_token_ids ?? false,
  };
}

export function prepareCompletion(engine: Engine, body: CompletionRequest): Prepared {
  checkModel(engine, body.model);
  return prepare(engine, body, completionPrompt(engine, body.prompt), body.max_tokens);
}

export function prepareChat(engine: Engine, body: ChatRequest): Prepared {
  checkModel(engine, body.model);
  const prompt = chatPrompt(engine, body.messages);
  const rest = Math.max(1, engine.model.config.maxPositions - prompt.length);
  return prepare(engine, body, prompt, body.max_completion_tokens ?? body.max_tokens ?? rest);
}
