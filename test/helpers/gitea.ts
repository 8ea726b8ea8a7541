// A real Gitea (code.gitea.io/gitea, built by dev/gitea.ts) on a free loopback port, in a temporary directory:
// SQLite, no SSH, no mail, webhooks allowed to loopback (Ferry's API runs there). An admin user and its API token
// are made with Gitea's own CLI before the server starts; repositories and webhooks through its REST API.
// The binary comes from FERRY_GITEA_PATH (`npm test` builds it first) or ensureGitea(); a missing binary fails.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureGitea, giteaSourceDir } from '../../dev/gitea';
import { git } from './git';
import { bareRepository } from './git-host';
import { freePort, spawnProcess, stopGroup, until, type Spawned } from './processes';

export interface GiteaServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The admin user the token belongs to. */
  user: string;
  password: string;
  /** An API token of `user` (write:repository, write:issue, write:user). */
  token: string;
  /** Calls the REST API v1 as `user` with the token. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Creates `user/<name>` and pushes `files` as one commit on main; returns the clone URL. */
  createRepository(name: string, files: Record<string, string>): Promise<string>;
  /** Creates a (non-admin) user with Gitea's CLI. */
  addUser(name: string, password: string): void;
  /** Gitea's own output so far (console log). */
  output(): string;
  stop(): Promise<void>;
}

export function giteaBinary(): string {
  return process.env.FERRY_GITEA_PATH ?? ensureGitea();
}

export async function startGitea(dir: string): Promise<GiteaServer> {
  const binary = giteaBinary();
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = join(dir, 'app.ini');
  writeFileSync(
    config,
    [
      'APP_NAME = Ferry test Gitea',
      'RUN_MODE = prod',
      'RUN_USER = root',
      // These machines run everything as root; Gitea refuses to otherwise.
      'I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true',
      `WORK_PATH = ${dir}`,
      '[server]',
      'PROTOCOL = http',
      'HTTP_ADDR = 127.0.0.1',
      `HTTP_PORT = ${port}`,
      'DOMAIN = 127.0.0.1',
      `ROOT_URL = ${url}/`,
      // Templates and locales come from the module's source directory.
      `STATIC_ROOT_PATH = ${giteaSourceDir()}`,
      `APP_DATA_PATH = ${join(dir, 'data')}`,
      'DISABLE_SSH = true',
      'START_SSH_SERVER = false',
      'OFFLINE_MODE = true',
      'LFS_START_SERVER = false',
      '[database]',
      'DB_TYPE = sqlite3',
      `PATH = ${join(dir, 'gitea.db')}`,
      '[repository]',
      `ROOT = ${join(dir, 'repositories')}`,
      'DEFAULT_BRANCH = main',
      '[security]',
      'INSTALL_LOCK = true',
      'SECRET_KEY = ferry-test-gitea-secret-key-0123456789',
      'INTERNAL_TOKEN = eyJhbGciOiJIUzI1NiJ9.ferry-test-internal-token.0123456789abcdef',
      '[service]',
      'DISABLE_REGISTRATION = true',
      '[webhook]',
      // Ferry's API listens on loopback, which Gitea's default ("external") refuses to deliver to.
      'ALLOWED_HOST_LIST = loopback',
      'DELIVER_TIMEOUT = 30',
      '[queue]',
      'TYPE = channel',
      '[indexer]',
      'ISSUE_INDEXER_TYPE = db',
      '[actions]',
      'ENABLED = false',
      '[mailer]',
      'ENABLED = false',
      '[cron]',
      'ENABLED = false',
      '[log]',
      'MODE = console',
      'LEVEL = Warn',
      `ROOT_PATH = ${join(dir, 'log')}`,
      '',
    ].join('\n'),
  );
  const env = { ...process.env, GITEA_WORK_DIR: dir, HOME: dir, GITEA_CUSTOM: join(dir, 'custom') };
  const cli = (...args: string[]) =>
    execFileSync(binary, [...args, '--config', config], { cwd: dir, env, encoding: 'utf8', stdio: 'pipe' }).trim();
  const user = 'ferry-bot';
  const password = 'gitea-admin-password-0123';
  try {
    cli('migrate');
    cli(
      'admin',
      'user',
      'create',
      '--username',
      user,
      '--password',
      password,
      '--email',
      'ferry-bot@example.com',
      '--admin',
      '--must-change-password=false',
    );
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`setting up Gitea (${binary}) in ${dir} failed: ${e.stderr || e.stdout || e.message}`);
  }
  const token = cli(
    'admin',
    'user',
    'generate-access-token',
    '--username',
    user,
    '--token-name',
    'ferry',
    '--scopes',
    'write:repository,write:issue,write:user',
    '--raw',
  )
    .split('\n')
    .pop()!
    .trim();
  const server: Spawned = spawnProcess(binary, ['web', '--config', config], { cwd: dir, env });
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}/api/v1${path}`, {
      method,
      headers: { authorization: `token ${token}`, 'content-type': 'application/json', accept: 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: kept as text
    }
    return { status: res.status, body: parsed as any };
  };
  try {
    await until(
      `Gitea on ${url} to answer`,
      async () => {
        if (server.child.exitCode !== null) throw new Error(`Gitea exited: ${server.output().slice(-2000)}`);
        const res = await fetch(`${url}/api/v1/version`).catch(() => undefined);
        return res?.ok ? true : undefined;
      },
      120_000,
    );
  } catch (err) {
    await stopGroup(server);
    throw err;
  }
  const basic = `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;
  return {
    url,
    user,
    password,
    token,
    api,
    async createRepository(name, files) {
      const created = await api('POST', '/user/repos', { name, default_branch: 'main', private: true });
      if (created.status !== 201) throw new Error(`creating ${user}/${name} on Gitea: ${JSON.stringify(created)}`);
      const bare = bareRepository(join(dir, 'seed', `${name}.git`), files);
      const clone = `${url}/${user}/${name}.git`;
      git(bare, '-c', `http.extraHeader=Authorization: ${basic}`, 'push', '--quiet', clone, 'main:main');
      return clone;
    },
    addUser(name, password) {
      cli(
        'admin',
        'user',
        'create',
        '--username',
        name,
        '--password',
        password,
        '--email',
        `${name}@example.com`,
        '--must-change-password=false',
      );
    },
    output: () => server.output(),
    stop: () => stopGroup(server),
  };
}
