/**
 * The OpenAI response objects of /v1/completions (`text_completion`) and /v1/chat/completions
 * (`chat.completion`, `chat.completion.chunk`), whole and as streamed chunks, for one choice.
 */
import { randomUUID } from 'node:crypto';
import type { CompletionResult, Piece } from './completion.js';

export type Endpoint = 'completion' | 'chat';

/** The fields every object of one response shares. */
export interface ResponseHead {
  id: string;
  created: number;
  model: string;
  endpoint: Endpoint;
  returnTokenIds: boolean;
}

export function responseHead(endpoint: Endpoint, model: string, returnTokenIds: boolean): ResponseHead {
  const id = `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  return { id, created: Math.floor(Date.now() / 1000), model, endpoint, returnTokenIds };
}

function envelope(head: ResponseHead, chunk: boolean) {
  const object = head.endpoint === 'chat' ? (chunk ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion';
  return { id: head.id, object, created: head.created, model: head.model };
}

function choice(head: ResponseHead, text: string, tokenIds: number[], finish: string | null, chunk: boolean) {
  const ids = head.returnTokenIds ? { token_ids: tokenIds } : {};
  if (head.endpoint === 'completion') return { index: 0, text, logprobs: null, finish_reason: finish, ...ids };
  const content = chunk
    ? { delta: finish === null ? { content: text } : {} }
    : { message: { role: 'assistant', content: text } };
  return { index: 0, ...content, logprobs: null, finish_reason: finish, ...ids };
}

/** The whole (non-streamed) response. */
export function wholeResponse(head: ResponseHead, result: CompletionResult) {
  return {
    ...envelope(head, false),
    choices: [choice(head, result.text, result.tokenIds, result.finishReason, false)],
    usage: result.usage,
  };
}

/** The chunk a chat stream opens with: the assistant's role, no text. */
export function roleChunk(head: ResponseHead) {
  return {
    ...envelope(head, true),
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
  };
}

export function pieceChunk(head: ResponseHead, piece: Piece) {
  return { ...envelope(head, true), choices: [choice(head, piece.text, piece.tokenIds, null, true)] };
}

export function finishChunk(head: ResponseHead, result: CompletionResult) {
  return { ...envelope(head, true), choices: [choice(head, '', [], result.finishReason, true)] };
}

/** stream_options.include_usage: the last chunk before [DONE], with no choices. */
export function usageChunk(head: ResponseHead, result: CompletionResult) {
  return { ...envelope(head, true), choices: [], usage: result.usage };
}
