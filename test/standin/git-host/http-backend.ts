// Git's smart HTTP protocol for a git-host stand-in, by git's own CGI program (`git http-backend`), so clone,
// fetch and push against the stand-in are real git over HTTP, at the URL the host would serve
// (`http://127.0.0.1:PORT/owner/name.git`). Auth as the hosts take it: HTTP basic with any user name and a token as
// the password. The refs before and after a push are compared, so the stand-in can tell what the push changed.
import { spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, dirname } from 'node:path';

/** The token in an `Authorization: Basic base64(user:token)` header, or undefined. */
export function basicPassword(header: string | undefined): string | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 ? decoded.slice(colon + 1) : undefined;
}

/** Whether a request path is git's smart HTTP below `<repo>.git`, and the part after it. */
export function gitRequestPath(pathname: string): { repository: string; rest: string } | undefined {
  const match = /^\/(.+?)\.git(\/(?:info\/refs|git-upload-pack|git-receive-pack|HEAD|objects\/.*))$/.exec(pathname);
  return match ? { repository: decodeURIComponent(match[1]), rest: match[2] } : undefined;
}

/**
 * Serves one smart-HTTP request for the bare repository at `repoPath` (the body is already read). `user` is the
 * authenticated user (git http-backend allows receive-pack only with one).
 */
export function serveGit(
  req: IncomingMessage,
  res: ServerResponse,
  options: { repoPath: string; rest: string; query: string; body: Buffer; user: string },
): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        GIT_PROJECT_ROOT: dirname(options.repoPath),
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: `/${basename(options.repoPath)}${options.rest}`,
        REQUEST_METHOD: req.method ?? 'GET',
        QUERY_STRING: options.query,
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        CONTENT_LENGTH: String(options.body.length),
        REMOTE_USER: options.user,
        REMOTE_ADDR: '127.0.0.1',
        ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) } : {}),
        ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.stdin.end(options.body);
    child.on('close', (code) => {
      const all = Buffer.concat(out);
      let split = all.indexOf('\r\n\r\n');
      let gap = 4;
      if (split < 0) {
        split = all.indexOf('\n\n');
        gap = 2;
      }
      if (code !== 0 && split < 0) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`git http-backend failed: ${err}`);
        resolve();
        return;
      }
      const head = all.subarray(0, split).toString('utf8');
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.split(/\r?\n/)) {
        const colon = line.indexOf(':');
        if (colon < 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number(value.split(' ')[0]);
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      res.end(all.subarray(split + gap));
      resolve();
    });
  });
}
