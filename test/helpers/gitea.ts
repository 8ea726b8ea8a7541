// A real Gitea (code.gitea.io/gitea, built by dev/gitea.ts) on a free loopback port, in a temporary directory:
// SQLite, no SSH, no mail, webhooks allowed to loopback (Ferry's API runs there). An admin user and its API token
// are made with Gitea's own CLI before the server starts; repositories and webhooks through its REST API.
// The binary comes from FERRY_GITEA_PATH (`npm test` builds it first) or ensureGitea(); a missing binary fails.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { ensureGitea, giteaSourceDir } from '../../dev/gitea';
import { bareRepository } from './git-host';
import { freePort, spawnProcess, stopGroup, until, type Spawned } from './processes';

export interface GiteaOptions {
  /** Serve HTTPS with this certificate (for 127.0.0.1) and key; `ca` is the PEM that signed it. */
  tls?: { cert: string; key: string; ca: string };
}

export interface GiteaServer {
  /** `http://127.0.0.1:<port>`, or `https://…` with `tls` */
  url: string;
  /** The admin user the token belongs to. */
  user: string;
  password: string;
  /** An API token of `user` (write:repository, write:issue, write:user), for the test's own calls. */
  token: string;
  /** A token of `user` with only write:repository and write:issue, the scopes Ferry's token needs. */
  ferryToken: string;
  /** Calls the REST API v1 as `user` with the token. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Creates `user/<name>` and pushes `files` as one commit on main; returns the clone URL. */
  createRepository(name: string, files: Record<string, string>): Promise<string>;
  /** Creates a (non-admin) user with Gitea's CLI. */
  addUser(name: string, password: string): void;
  /**
   * The head of `branch` of `user/<name>` as Gitea's git serves it (ls-remote over smart HTTP). Not the REST API's
   * branch list: Gitea fills that from a queue, so right after a push it can still show the old head.
   */
  branchHead(name: string, branch: string): string | undefined;
  /**
   * Merges pull request `number` through the REST API once Gitea has computed that it is mergeable (also from a
   * queue: a merge asked for before that is refused); returns the merge commit.
   */
  merge(name: string, number: number): Promise<string>;
  /** Gitea's own output so far (console log). */
  output(): string;
  stop(): Promise<void>;
}

export function giteaBinary(): string {
  return process.env.FERRY_GITEA_PATH ?? ensureGitea();
}

/** One HTTP(S) request, trusting `ca` (Node's fetch cannot be given a CA per call). */
function call(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  ca: string | undefined,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = send(url, { method, headers, ...(ca ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function startGitea(dir: string, options: GiteaOptions = {}): Promise<GiteaServer> {
  const binary = giteaBinary();
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const tls = options.tls;
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  if (tls) {
    writeFileSync(join(dir, 'cert.pem'), tls.cert);
    writeFileSync(join(dir, 'key.pem'), tls.key, { mode: 0o600 });
  }
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
      `PROTOCOL = ${tls ? 'https' : 'http'}`,
      ...(tls ? [`CERT_FILE = ${join(dir, 'cert.pem')}`, `KEY_FILE = ${join(dir, 'key.pem')}`] : []),
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
  const newToken = (name: string, scopes: string) =>
    cli('admin', 'user', 'generate-access-token', '--username', user, '--token-name', name, '--scopes', scopes, '--raw')
      .split('\n')
      .pop()!
      .trim();
  const token = newToken('test', 'write:repository,write:issue,write:user');
  // Only the scopes docs/strategies/pull-request.md tells users to give Ferry's token.
  const ferryToken = newToken('ferry', 'write:repository,write:issue');
  const server: Spawned = spawnProcess(binary, ['web', '--config', config], { cwd: dir, env });
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await call(
      `${url}/api/v1${path}`,
      method,
      { authorization: `token ${token}`, 'content-type': 'application/json', accept: 'application/json' },
      body === undefined ? undefined : JSON.stringify(body),
      tls?.ca,
    );
    const text = res.text;
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
        const res = await call(`${url}/api/v1/version`, 'GET', {}, undefined, tls?.ca).catch(() => undefined);
        return res?.status === 200 ? true : undefined;
      },
      120_000,
    );
  } catch (err) {
    await stopGroup(server);
    throw err;
  }
  const basic = `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;
  // GIT_SSL_CAINFO (set on some machines to the system bundle) outranks http.sslCAInfo: it is set to the CA.
  const gitEnv = (): NodeJS.ProcessEnv => {
    if (tls) writeFileSync(join(dir, 'ca.pem'), tls.ca);
    return { ...process.env, GIT_TERMINAL_PROMPT: '0', ...(tls ? { GIT_SSL_CAINFO: join(dir, 'ca.pem') } : {}) };
  };
  return {
    url,
    user,
    password,
    token,
    ferryToken,
    api,
    async createRepository(name, files) {
      const created = await api('POST', '/user/repos', { name, default_branch: 'main', private: true });
      if (created.status !== 201) throw new Error(`creating ${user}/${name} on Gitea: ${JSON.stringify(created)}`);
      const bare = bareRepository(join(dir, 'seed', `${name}.git`), files);
      const clone = `${url}/${user}/${name}.git`;
      execFileSync('git', ['-c', `http.extraHeader=Authorization: ${basic}`, 'push', '--quiet', clone, 'main:main'], {
        cwd: bare,
        stdio: 'pipe',
        env: gitEnv(),
      });
      // Gitea takes a push in from a queue: until then its API calls the repository empty.
      await until(
        `Gitea to take in the push to ${user}/${name}`,
        async () => ((await api('GET', `/repos/${user}/${name}`)).body?.empty === false ? true : undefined),
        60_000,
      );
      return clone;
    },
    branchHead(name, branch) {
      const out = execFileSync(
        'git',
        [
          '-c',
          `http.extraHeader=Authorization: ${basic}`,
          'ls-remote',
          `${url}/${user}/${name}.git`,
          `refs/heads/${branch}`,
        ],
        { encoding: 'utf8', stdio: 'pipe', env: gitEnv() },
      );
      return out.split('\t')[0]?.trim() || undefined;
    },
    async merge(name, number) {
      const path = `/repos/${user}/${name}/pulls/${number}`;
      await until(
        `Gitea to find pull request #${number} mergeable`,
        async () => ((await api('GET', path)).body?.mergeable === true ? true : undefined),
        60_000,
      );
      const merged = await api('POST', `${path}/merge`, { Do: 'merge' });
      if (merged.status !== 200) throw new Error(`merging ${path} on Gitea: ${JSON.stringify(merged)}`);
      const sha = (await api('GET', path)).body?.merge_commit_sha as string | undefined;
      if (!sha) throw new Error(`Gitea names no merge commit for ${path}`);
      return sha;
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
