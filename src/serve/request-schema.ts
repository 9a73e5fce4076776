/**
 * The request bodies `wct serve` accepts, in zod: OpenAI's /v1/completions and /v1/chat/completions fields that
 * change what is generated. Unknown fields are ignored (clients send `user`, `metadata` and the like); fields
 * that would ask for something this server does not do (n > 1, best_of, echo, suffix, logprobs, penalties, tools,
 * a response_format other than text) are refused rather than ignored. `return_token_ids` is vLLM's extension:
 * the choice (or each chunk) carries the generated ids. A body that does not fit is a 400 naming the field (`param`).
 */
import { z } from 'zod';
import { MAX_SEED } from '../recipe/schema.js';
import { HttpError } from './http-error.js';

const unsupported = (what: string) => `not supported by wct serve (${what})`;

const sampling = {
  model: z.string().optional(),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().min(0).max(MAX_SEED).nullish(),
  stop: z
    .union([z.string(), z.array(z.string()).max(4)], { error: 'expected a string or a list of at most 4 strings' })
    .nullish(),
  n: z.literal(1, { error: unsupported('one choice per request: n must be 1') }).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  return_token_ids: z.boolean().nullish(),
  presence_penalty: z.literal(0, { error: unsupported('presence_penalty must be 0') }).nullish(),
  frequency_penalty: z.literal(0, { error: unsupported('frequency_penalty must be 0') }).nullish(),
  logit_bias: z.null({ error: unsupported('logit_bias') }).optional(),
};

export const completionRequest = z.object({
  ...sampling,
  prompt: z.union(
    [
      z.string(),
      z.array(z.string()).length(1, { error: 'one prompt per request (a string or a list of one string)' }),
      z.array(z.number().int().min(0)).min(1),
    ],
    { error: 'expected a string, a list of one string, or a list of token ids' },
  ),
  best_of: z.literal(1, { error: unsupported('best_of must be 1') }).nullish(),
  echo: z.literal(false, { error: unsupported('echo') }).nullish(),
  suffix: z.null({ error: unsupported('suffix') }).optional(),
  logprobs: z.null({ error: unsupported('logprobs') }).optional(),
});

const textPart = z.object({ type: z.literal('text'), text: z.string() });

export const chatRequest = z.object({
  ...sampling,
  messages: z
    .array(
      z.looseObject({
        role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
        content: z.union([z.string(), z.array(textPart), z.null()], {
          error: 'expected a string or a list of {type: "text", text} parts',
        }),
      }),
    )
    .min(1),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.literal(false, { error: unsupported('logprobs') }).nullish(),
  tools: z
    .array(z.unknown())
    .max(0, { error: unsupported('function calling') })
    .nullish(),
  response_format: z.object({ type: z.literal('text', { error: unsupported('only text responses') }) }).nullish(),
});

export type CompletionRequest = z.infer<typeof completionRequest>;
export type ChatRequest = z.infer<typeof chatRequest>;

/** `body` as `schema` reads it, or a 400 naming the first field that does not fit. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const param = issue.path.length === 0 ? null : issue.path.join('.');
  throw new HttpError(400, `${param ?? 'the request body'}: ${issue.message}`, param, 'invalid_value');
}
