// Reads a webhook's raw body (the signature covers its exact bytes) with a size limit that is enforced before the
// body is read: a declared Content-Length over the limit is refused at once, and a body sent without one is
// refused as soon as it passes the limit. The connection is then closed, so the rest is never read.
import type { Request, Response } from 'express';
import { FerryError } from '../../client/errors';

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** The body was larger than the limit: answered 413 by the router, and the connection closed. */
export class BodyTooLarge extends FerryError {
  constructor(readonly limit: number) {
    super('InvalidArgument', `request body is larger than ${formatBytes(limit)}; webhook deliveries are at most that`);
  }
}

export function formatBytes(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : `${bytes} bytes`;
}

export function readRawBody(req: Request, limit: number): Promise<Buffer> {
  const encoding = (req.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') {
    return Promise.reject(
      new FerryError('InvalidArgument', `Content-Encoding ${encoding} is not accepted: send the body uncompressed`),
    );
  }
  const declared = req.get('content-length');
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(new BodyTooLarge(limit));

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > limit) {
        cleanup();
        req.pause();
        reject(new BodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, received));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onAborted = (): void => {
      cleanup();
      reject(new FerryError('InvalidArgument', 'the request body was not received completely'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

/**
 * Answers a body that was too large and closes the connection once the answer is out: Node would otherwise read
 * (and discard) the rest of the body to keep the connection alive.
 */
export function refuseLargeBody(res: Response, error: BodyTooLarge): void {
  res.set('Connection', 'close');
  res.on('finish', () => res.req.socket.destroySoon?.());
  res.status(413).json(error.toJSON());
}
