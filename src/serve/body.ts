/**
 * A request's JSON body, at most `limit` bytes: a larger body is a 413 (its Content-Length is checked first;
 * a body without one is read and dropped past the limit, so the client still gets the answer), bytes that are
 * not JSON a 400 saying where the syntax fails.
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.js';

function tooLarge(limit: number): HttpError {
  return new HttpError(
    413,
    `the request body exceeds ${limit} bytes (wct serve --max-body-bytes)`,
    null,
    'body_too_large',
  );
}

function readBytes(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => (size > limit ? reject(tooLarge(limit)) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new HttpError(400, 'the client closed the connection before the body ended'));
    });
  });
}

export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const text = (await readBytes(req, limit)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `the request body is not valid JSON (${(e as Error).message})`, null, 'invalid_json');
  }
}
