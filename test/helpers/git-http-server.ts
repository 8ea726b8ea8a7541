// A git smart-HTTP server on loopback: `git http-backend` behind node's HTTP server, serving the bare repositories
// under `projectRoot` as a git host would (their hooks run, unlike a file:// push, which runs receive-pack with the
// pusher's environment). Optionally behind a Basic-auth check, and over TLS with a given certificate.
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type RequestListener } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface GitHttpServer {
  /** `http://127.0.0.1:PORT/<name>` (https with `tls`) for a repository `<projectRoot>/<name>`. */
  url(name: string): string;
  /** The Authorization header of every request, in order. */
  seen: (string | undefined)[];
  close(): Promise<void>;
}

export async function startGitHttpServer(
  projectRoot: string,
  options: {
    /** The Authorization header a request must carry (any one of them, for a list); others get 401. */
    authorization?: string | readonly string[];
    /** Serve HTTPS with this certificate (PEM) and key. */
    tls?: { cert: string; key: string };
    /** Called before each request is served; the request waits for it (to hold a fetch or a push). */
    beforeRequest?: (req: IncomingMessage) => Promise<void>;
  } = {},
): Promise<GitHttpServer> {
  const seen: (string | undefined)[] = [];
  const accepted = options.authorization === undefined ? undefined : [options.authorization].flat();
  const serve: RequestListener = async (req, res) => {
    seen.push(req.headers.authorization);
    await options.beforeRequest?.(req);
    if (accepted !== undefined && !accepted.includes(req.headers.authorization ?? '')) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="gitops"' }).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const header = (name: string) => String(req.headers[name] ?? '');
    const backend = spawn('git', ['http-backend'], {
      env: {
        ...process.env,
        GIT_PROJECT_ROOT: projectRoot,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: header('content-type'),
        ...(req.headers['content-length'] ? { CONTENT_LENGTH: header('content-length') } : {}),
        HTTP_CONTENT_ENCODING: header('content-encoding'),
        GIT_PROTOCOL: header('git-protocol'),
        REMOTE_USER: 'ferry',
        REMOTE_ADDR: '127.0.0.1',
      },
    });
    req.pipe(backend.stdin);
    const out: Buffer[] = [];
    backend.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    backend.on('close', () => {
      const response = Buffer.concat(out);
      const end = response.indexOf('\r\n\r\n');
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of response.subarray(0, end).toString('latin1').split('\r\n')) {
        const [name = '', ...value] = line.split(':');
        if (name.toLowerCase() === 'status') status = Number.parseInt(value.join(':').trim(), 10);
        else if (name) headers[name] = value.join(':').trim();
      }
      res.writeHead(status, headers).end(response.subarray(end + 4));
    });
  };
  const server = options.tls ? createTlsServer(options.tls, serve) : createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (name) => `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}/${name}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
