// Starts the HTTP API on a host and port and hands back its URL and a way to stop it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TokenStore } from '../client/auth';
import type { Logger } from '../client/log';
import type { FerryApi } from '../client/types';
import { createApiApp, type ApiAppOptions } from './app';

export const DEFAULT_API_HOST = '127.0.0.1';
export const DEFAULT_API_PORT = 8234;
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** Where the API listens: FERRY_HOST (default 127.0.0.1) and FERRY_PORT (default 8234), validated. */
export function apiAddressFromEnv(env: NodeJS.ProcessEnv = process.env): { host: string; port: number } {
  const value = env.FERRY_PORT;
  const port = value === undefined || value === '' ? DEFAULT_API_PORT : Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`FERRY_PORT must be a port number (0-65535), got "${value}"`);
  }
  return { host: env.FERRY_HOST || DEFAULT_API_HOST, port };
}

export interface ApiServerOptions extends Pick<
  ApiAppOptions,
  'admins' | 'roles' | 'oidc' | 'availability' | 'webhooks' | 'callbackKey'
> {
  ferry: FerryApi;
  tokens: TokenStore;
  /** Default 127.0.0.1: the API is local unless the operator says otherwise. */
  host?: string;
  /** Default 8234; 0 picks a free port (tests). */
  port?: number;
  logger?: Logger;
  /** Base of callback gates' URLs (FERRY_PUBLIC_URL); default: this server's own URL. */
  publicUrl?: string;
}

export interface ApiServer {
  /** e.g. http://127.0.0.1:8234 (with the real port when started on port 0). */
  url: string;
  port: number;
  /** Stops accepting connections, ends idle keep-alive connections and resolves when the server is closed. */
  close(): Promise<void>;
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const host = options.host || DEFAULT_API_HOST;
  let ownUrl = '';
  const app = createApiApp({
    callbackKey: options.callbackKey,
    publicUrl: () => options.publicUrl ?? ownUrl,
    ferry: options.ferry,
    tokens: options.tokens,
    logger: options.logger,
    admins: options.admins,
    roles: options.roles,
    oidc: options.oidc,
    availability: options.availability,
    webhooks: options.webhooks,
  });
  // A server must not close an idle keep-alive connection that its client is about to reuse: the request goes into
  // a closing socket and fails ("other side closed"). Node's server closes idle connections after 5 s and tells the
  // client so (`Keep-Alive: timeout=5`), and Node's fetch then keeps them 4 s: one second apart, which a loaded
  // machine's late timers cross. So the server keeps idle connections 65 s and does not advertise it (setting the
  // Connection header itself leaves out Node's Keep-Alive hint): clients fall back to their own, shorter idle limit
  // (fetch 4 s, proxies and browsers at most 60 s) and always close first.
  const server = http.createServer((req, res) => {
    if (res.shouldKeepAlive) res.setHeader('Connection', 'keep-alive');
    app(req, res);
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(options.port ?? DEFAULT_API_PORT, host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  ownUrl = `http://${urlHost}:${port}`;
  let closing: Promise<void> | undefined;

  return {
    url: ownUrl,
    port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
