// Helpers for tests against a git host (the GitHub and GitLab stand-ins, a real Gitea): a bare repository with
// files, and git over HTTP with a token, as Ferry's git side and a developer use them. The token reaches git
// through the environment (an http.extraHeader), never a URL or an argument. git over HTTP runs asynchronously:
// the stand-in it talks to answers from this same process.
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { git } from './git';

/** A bare repository at `path` whose branch `main` has `files` in one commit. */
export function bareRepository(path: string, files: Record<string, string>): string {
  mkdirSync(dirname(path), { recursive: true });
  git(dirname(path), 'init', '--quiet', '--bare', '--initial-branch=main', path);
  const work = mkdtempSync(join(tmpdir(), 'ferry-git-host-'));
  try {
    git(work, 'init', '--quiet', '--initial-branch=main');
    writeFiles(work, files);
    git(work, 'add', '-A');
    git(work, 'commit', '--quiet', '-m', 'Initial sources');
    git(work, 'push', '--quiet', path, 'main:main');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return path;
}

function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), content);
  }
}

/** git with `Authorization: Basic base64(user:token)` on every HTTP request to `url`'s origin. */
export function gitWithToken(
  cwd: string,
  url: string,
  token: string,
  user = 'x-access-token',
  ...args: string[]
): Promise<string> {
  const origin = new URL(url).origin;
  const env = {
    ...process.env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'Dev',
    GIT_AUTHOR_EMAIL: 'dev@example.com',
    GIT_COMMITTER_NAME: 'Dev',
    GIT_COMMITTER_EMAIL: 'dev@example.com',
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `http.${origin}/.extraHeader`,
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`,
  };
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd, encoding: 'utf8', env, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`git ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout.trim());
    });
  });
}

/**
 * Pushes a branch `branch`, made from `from` (default main) with `files` changed, to the repository at `url` over
 * HTTP; returns the new commit.
 */
export async function pushBranch(options: {
  url: string;
  token: string;
  user?: string;
  branch: string;
  from?: string;
  files: Record<string, string>;
  message?: string;
}): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'ferry-push-'));
  const run = (...args: string[]) => gitWithToken(work, options.url, options.token, options.user, ...args);
  try {
    await run('clone', '--quiet', '--branch', options.from ?? 'main', options.url, '.');
    await run('checkout', '--quiet', '-B', options.branch);
    writeFiles(work, options.files);
    await run('add', '-A');
    await run('commit', '--quiet', '--allow-empty', '-m', options.message ?? `Change on ${options.branch}`);
    await run('push', '--quiet', '--force', 'origin', `HEAD:refs/heads/${options.branch}`);
    return await run('rev-parse', 'HEAD');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export interface HookReceiver {
  url: string;
  received: Array<{ headers: IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}

/** An HTTP receiver of webhook deliveries that answers 200 and keeps what it got. */
export async function startHookReceiver(): Promise<HookReceiver> {
  const received: HookReceiver['received'] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
