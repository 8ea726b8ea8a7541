// A real HTTP receiver for Ferry's outbound events, on 127.0.0.1 (port 0). It verifies each delivery's signature
// the way a user's receiver would (verifySignature), accepts an event id once (a second delivery of an accepted
// id is acknowledged and counted as a duplicate), and can be told to fail the next N deliveries, to stall them
// (hold the answer until it is told to recover, or the sender gives up), and to recover.
// Without a secret it records any JSON body it gets (a Slack incoming webhook answers "ok").
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  verifySignature,
  type SignatureCheck,
} from '../../activities/notify/signature';

export interface ReceivedDelivery {
  /** The event id in the body (CloudEvents `id`), when there is one. */
  id?: string;
  type?: string;
  contentType?: string;
  signature?: SignatureCheck;
  /** What the receiver answered (0: the sender hung up while the receiver stalled). */
  status: number;
  /** Milliseconds since the receiver started. */
  at: number;
  body: any;
}

export interface EventReceiver {
  url: string;
  /** Every request, in arrival order. */
  deliveries: ReceivedDelivery[];
  /** Accepted bodies by event id (or by arrival index without a secret), in acceptance order. */
  accepted: Map<string, any>;
  /** How often an already accepted id was delivered again. */
  duplicates: Map<string, number>;
  /** The next `n` deliveries get `status` (default 503). */
  failNext(n: number, status?: number): void;
  /** The next deliveries are held without an answer until `recover()`. */
  stall(): void;
  /** Stop failing and stalling; stalled deliveries are answered as failures (their senders have retried). */
  recover(): void;
  close(): Promise<void>;
}

export async function startEventReceiver(options: { secret?: string; answer?: string } = {}): Promise<EventReceiver> {
  const started = Date.now();
  const deliveries: ReceivedDelivery[] = [];
  const accepted = new Map<string, any>();
  const duplicates = new Map<string, number>();
  let failures: { left: number; status: number } = { left: 0, status: 503 };
  let stalling = false;
  const stalled: ServerResponse[] = [];

  const handle = (req: IncomingMessage, res: ServerResponse, raw: Buffer): void => {
    let body: any;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      body = undefined;
    }
    const delivery: ReceivedDelivery = {
      ...(typeof body?.id === 'string' ? { id: body.id } : {}),
      ...(typeof body?.type === 'string' ? { type: body.type } : {}),
      ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
      status: 0,
      at: Date.now() - started,
      body,
    };
    deliveries.push(delivery);
    const answer = (status: number, text: string): void => {
      delivery.status = status;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(text);
    };
    if (options.secret !== undefined) {
      delivery.signature = verifySignature(
        options.secret,
        {
          signature: req.headers[SIGNATURE_HEADER.toLowerCase()] as string | undefined,
          timestamp: req.headers[TIMESTAMP_HEADER.toLowerCase()] as string | undefined,
        },
        raw,
      );
      if (!delivery.signature.ok) return answer(401, delivery.signature.problem);
    }
    if (body === undefined) return answer(400, 'body is not JSON');
    if (stalling) {
      stalled.push(res);
      res.on('close', () => {
        if (!res.writableEnded) delivery.status = 0;
      });
      return;
    }
    if (failures.left > 0) {
      failures.left--;
      return answer(failures.status, 'receiver failing on purpose');
    }
    const key = delivery.id ?? String(deliveries.length - 1);
    if (accepted.has(key)) duplicates.set(key, (duplicates.get(key) ?? 0) + 1);
    else accepted.set(key, body);
    answer(options.secret === undefined ? 200 : 202, options.answer ?? 'ok');
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/events`,
    deliveries,
    accepted,
    duplicates,
    failNext(n, status = 503) {
      failures = { left: n, status };
    },
    stall() {
      stalling = true;
    },
    recover() {
      stalling = false;
      failures = { left: 0, status: 503 };
      for (const res of stalled.splice(0)) if (!res.writableEnded) res.writeHead(503).end('stalled');
    },
    async close() {
      for (const res of stalled.splice(0)) if (!res.writableEnded) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
