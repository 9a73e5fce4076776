/**
 * The OpenAI-compatible HTTP API of `wct serve`, on node:http: GET /v1/models, POST /v1/completions and
 * POST /v1/chat/completions, whole or streamed as server-sent events (`data: {json}\n\n` chunks, then
 * `data: [DONE]`). One model, one request decoding at a time: requests are validated as they arrive, then wait
 * in a queue (./queue.ts). Every failure of a request is answered with OpenAI's JSON error body and the server
 * goes on serving; a client that disconnects stops its decoding. `close()` stops accepting connections, aborts
 * the decoding in flight and the queued requests (503), and resolves once the server is idle.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { asUserError } from '../errors.js';
import { readJsonBody } from './body.js';
import { complete, type Piece } from './completion.js';
import { errorBody, HttpError } from './http-error.js';
import { type Engine, type Prepared, prepareChat, prepareCompletion } from './prepare.js';
import { SerialQueue } from './queue.js';
import { chatRequest, completionRequest, parseBody } from './request-schema.js';
import {
  type Endpoint,
  finishChunk,
  pieceChunk,
  responseHead,
  roleChunk,
  usageChunk,
  wholeResponse,
} from './responses.js';

export interface ApiServer {
  server: http.Server;
  close(): Promise<void>;
}

const ROUTES: Record<string, { method: string; endpoint: Endpoint | 'models' }> = {
  '/v1/models': { method: 'GET', endpoint: 'models' },
  '/v1/completions': { method: 'POST', endpoint: 'completion' },
  '/v1/chat/completions': { method: 'POST', endpoint: 'chat' },
};

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

function sendEvent(res: ServerResponse, data: unknown): void {
  res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
}

/** A failure as an HttpError: the user's errors of the model (non-finite logits, say) and bugs (shown in full) are 500s. */
function asHttpError(e: unknown, log: (line: string) => void): HttpError {
  if (e instanceof HttpError) return e;
  const user = asUserError(e);
  if (user !== null) return new HttpError(500, user.message);
  log(e instanceof Error ? (e.stack ?? String(e)) : String(e));
  return new HttpError(500, `internal error (a bug in owq-wct, please report it): ${(e as Error)?.message ?? e}`);
}

export interface ServerOptions {
  maxBodyBytes: number;
  /** One line per request: what it generated, why it stopped, or the error it got. */
  log: (line: string) => void;
}

/** How long shutdown waits for responses still being written (or bodies still being read) before closing. */
const SHUTDOWN_GRACE_MS = 2000;

function shuttingDown(): HttpError {
  return new HttpError(503, 'the server is shutting down', null, 'shutting_down');
}

export function createApiServer(engine: Engine, { maxBodyBytes, log }: ServerOptions): ApiServer {
  const queue = new SerialQueue();
  const shutdown = new AbortController();

  /** After an abort: a 503 (or its stream event) when the server is shutting down; nothing for a client gone. */
  function aborted(res: ServerResponse, what: string, tokens: number | null): void {
    const why = shutdown.signal.aborted ? 'the server is shutting down' : 'the client disconnected';
    log(`${what}: ${tokens === null ? 'dropped from the queue' : `stopped after ${tokens} tokens`} (${why})`);
    if (shutdown.signal.aborted) throw shuttingDown();
    res.end();
  }

  async function decode(res: ServerResponse, endpoint: Endpoint, job: Prepared, signal: AbortSignal, what: string) {
    if (signal.aborted) return aborted(res, what, null);
    const head = responseHead(endpoint, engine.id, job.returnTokenIds);
    const onPiece = (piece: Piece) => {
      if (job.stream && (piece.text !== '' || job.returnTokenIds)) sendEvent(res, pieceChunk(head, piece));
    };
    if (job.stream) {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      if (endpoint === 'chat') sendEvent(res, roleChunk(head));
    }
    const started = performance.now();
    const result = await complete(engine.model, engine.tokenizer, job.prompt, job.sampling, signal, onPiece);
    const { prompt_tokens, completion_tokens } = result.usage;
    if (signal.aborted) return aborted(res, what, completion_tokens);
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    log(
      `${what}: 200, ${prompt_tokens} prompt + ${completion_tokens} completion tokens in ${seconds} s (${result.finishReason})`,
    );
    if (!job.stream) return sendJson(res, 200, wholeResponse(head, result));
    sendEvent(res, finishChunk(head, result));
    if (job.includeUsage) sendEvent(res, usageChunk(head, result));
    sendEvent(res, '[DONE]');
    res.end();
  }

  async function post(req: IncomingMessage, res: ServerResponse, endpoint: Endpoint): Promise<void> {
    const body = await readJsonBody(req, maxBodyBytes);
    const job =
      endpoint === 'chat'
        ? prepareChat(engine, parseBody(chatRequest, body))
        : prepareCompletion(engine, parseBody(completionRequest, body));
    const request = new AbortController();
    res.on('close', () => request.abort());
    const signal = AbortSignal.any([request.signal, shutdown.signal]);
    await queue.run(() => decode(res, endpoint, job, signal, `${req.method} ${req.url}`));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = ROUTES[new URL(req.url ?? '/', 'http://localhost').pathname];
    if (route === undefined) throw new HttpError(404, `no such path: ${req.method} ${req.url}`, null, 'not_found');
    if (req.method !== route.method) {
      res.setHeader('allow', route.method);
      throw new HttpError(405, `${req.url} takes ${route.method}, not ${req.method}`, null, 'method_not_allowed');
    }
    if (route.endpoint === 'models') {
      const model = { id: engine.id, object: 'model', created: 0, owned_by: 'wct' };
      return sendJson(res, 200, { object: 'list', data: [model] });
    }
    await post(req, res, route.endpoint);
  }

  const open = new Set<Promise<void>>(); // the responses not yet handed to the OS
  const server = http.createServer((req, res) => {
    const done = new Promise<void>((resolve) => {
      res.once('finish', resolve);
      res.once('close', resolve);
    });
    open.add(done);
    done.then(() => open.delete(done));
    handle(req, res).catch((e: unknown) => {
      const err = asHttpError(e, log);
      log(`${req.method} ${req.url}: ${err.status} ${err.message}`);
      if (!res.headersSent) return sendJson(res, err.status, errorBody(err));
      if (!res.writableEnded) {
        sendEvent(res, errorBody(err));
        res.end();
      }
    });
  });

  return {
    server,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      shutdown.abort();
      await queue.idle();
      // the answers to the aborted and queued requests go out; a client still sending a body is not waited for
      await Promise.race([Promise.all(open), delay(SHUTDOWN_GRACE_MS, undefined, { ref: false })]);
      server.closeAllConnections();
      await closed;
    },
  };
}
