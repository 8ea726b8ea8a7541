// Bearer tokens of the HTTP API. A token maps to a user name; that name is who approves, rejects and requests
// promotions, so it is never taken from a request body. Tokens come from a tokens file and from FERRY_TOKENS.
// Token values are never logged and never appear in error messages, and the tokens file holds only their sha256
// digests: `{"tokens": [{"sha256": "<hex>", "user": "alice"}]}`. Tokens are 256 random bits, so a plain sha256 is
// as good as a slow password hash here and keeps the lookup cheap. A file in the old plaintext form
// (`{"tokens": {"<token>": "<user>"}}`) is still read, and the API rewrites it with digests when it starts.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { logger as defaultLogger, type Logger } from './log';

export interface TokenStore {
  /** The user a token belongs to, or undefined. Compares in constant time against every known token. */
  userForToken(token: string): string | undefined;
  /** How many tokens are known (0 means every request will be refused). */
  size(): number;
}

/** `$FERRY_HOME`, default `.ferry` under the working directory. */
export function resolveFerryHome(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string {
  return path.resolve(cwd, env.FERRY_HOME || '.ferry');
}

/**
 * Creates FERRY_HOME readable by its owner only (0700), and takes away the group's and others' access when it
 * exists with more: it holds the tokens, the Temporal database and the example repository.
 */
export function ensurePrivateHome(home: string): string {
  const dir = path.resolve(home);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if ((fs.statSync(dir).mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
  return dir;
}

/** `$FERRY_TOKENS_FILE`, default `<home>/tokens.json`. */
export function resolveTokensFile(env: NodeJS.ProcessEnv = process.env, home: string = resolveFerryHome(env)): string {
  return env.FERRY_TOKENS_FILE ? path.resolve(env.FERRY_TOKENS_FILE) : path.join(home, 'tokens.json');
}

export interface TokenStoreOptions {
  /** Tokens file (see the header); default resolveTokensFile(env). null: no file. */
  file?: string | null;
  /**
   * Rewrite a tokens file that still holds plaintext tokens with their digests, now (the API does at start).
   * Default false: a library or test reading the file leaves it as it is.
   */
  migratePlaintext?: boolean;
  /** Environment to read FERRY_TOKENS, FERRY_TOKENS_FILE and FERRY_HOME from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Extra token → user pairs (tests, embedding). */
  tokens?: Record<string, string>;
  logger?: Logger;
}

interface Entry {
  digest: Buffer;
  user: string;
}

const digestOf = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** The sha256 of a token as the tokens file stores it (lowercase hex). */
export const tokenDigest = (token: string): string => digestOf(token).toString('hex');

/**
 * Builds a token store. The tokens file is read now (a malformed file is an error at startup) and re-read when it
 * changes, so a token added by `npm start` or by an operator works without restarting the API.
 */
export function createTokenStore(options: TokenStoreOptions = {}): TokenStore {
  const env = options.env ?? process.env;
  const log = options.logger ?? defaultLogger;
  const file = options.file === undefined ? resolveTokensFile(env) : options.file;

  const fixed: Entry[] = [
    ...parseTokensEnv(env.FERRY_TOKENS),
    ...Object.entries(options.tokens ?? {}).map(([token, user]) => ({ digest: digestOf(token), user })),
  ];

  if (file !== null && options.migratePlaintext) {
    const migrated = migrateTokensFile(file);
    if (migrated > 0) {
      log.warn('tokens file held plaintext tokens; rewrote it with their sha256 digests', { file, tokens: migrated });
    }
  }

  let fileEntries: Entry[] = [];
  let fileStamp = '';
  const reloadFile = (strict: boolean): void => {
    if (file === null) return;
    let stamp: string;
    try {
      const stat = fs.statSync(file);
      stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    } catch {
      stamp = 'missing';
    }
    if (stamp === fileStamp) return;
    try {
      fileEntries =
        stamp === 'missing'
          ? []
          : readTokensFile(file).map(({ sha256, user }) => ({ digest: Buffer.from(sha256, 'hex'), user }));
      fileStamp = stamp;
    } catch (err) {
      if (strict) throw err;
      // Keep serving the tokens we had; a half-written or broken file must not lock everyone out.
      log.warn('tokens file could not be re-read; keeping the previous tokens', {
        file,
        reason: err instanceof Error ? err.message : String(err),
      });
      fileStamp = stamp;
    }
  };
  reloadFile(true);

  return {
    userForToken(token: string): string | undefined {
      if (typeof token !== 'string' || token.length === 0) return undefined;
      reloadFile(false);
      const candidate = digestOf(token);
      let found: string | undefined;
      // Compare against every entry, without stopping early, so timing says nothing about which token matched.
      for (const entry of [...fixed, ...fileEntries]) {
        if (timingSafeEqual(candidate, entry.digest) && found === undefined) found = entry.user;
      }
      return found;
    },
    size(): number {
      reloadFile(false);
      return fixed.length + fileEntries.length;
    },
  };
}

/** `FERRY_TOKENS="tok1=alice,tok2=bob"`. A token may itself contain "=" (base64), so the user is after the last. */
function parseTokensEnv(value: string | undefined): Entry[] {
  if (!value) return [];
  const entries: Entry[] = [];
  value.split(',').forEach((raw, index) => {
    const item = raw.trim();
    if (item === '') return;
    const at = item.lastIndexOf('=');
    const token = at > 0 ? item.slice(0, at).trim() : '';
    const user = at > 0 ? item.slice(at + 1).trim() : '';
    if (token === '' || user === '') {
      // Say which entry, never what it contains: it may be a real token with a typo.
      throw new Error(`FERRY_TOKENS entry ${index + 1} is not TOKEN=USER`);
    }
    entries.push({ digest: digestOf(token), user });
  });
  return entries;
}

/** One entry of the tokens file as stored: a token's digest and its user; `plaintext` when read from the old form. */
interface StoredToken {
  sha256: string;
  user: string;
  plaintext?: boolean;
}

const TOKENS_FILE_SHAPE = '{"tokens": [{"sha256": "<hex digest of the token>", "user": "<user>"}]}';

function readTokensFile(file: string): StoredToken[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const reason =
      err instanceof SyntaxError
        ? 'is not valid JSON'
        : `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    throw new Error(`tokens file ${file} ${reason}`);
  }
  const tokens = (parsed as { tokens?: unknown } | null)?.tokens;
  if (Array.isArray(tokens)) {
    return tokens.map((entry: unknown, index) => {
      const { sha256, user } = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
      if (typeof sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sha256)) {
        throw new Error(`tokens file ${file}: tokens[${index}].sha256 must be the 64 hex digits of a sha256 digest`);
      }
      if (typeof user !== 'string' || user.trim() === '') {
        throw new Error(`tokens file ${file}: tokens[${index}].user must be a user name`);
      }
      return { sha256: sha256.toLowerCase(), user: user.trim() };
    });
  }
  if (typeof tokens !== 'object' || tokens === null) {
    throw new Error(`tokens file ${file} must be ${TOKENS_FILE_SHAPE}`);
  }
  // The plaintext form of earlier versions.
  const result: StoredToken[] = [];
  let position = 0;
  for (const [token, user] of Object.entries(tokens)) {
    position += 1;
    if (token === '' || typeof user !== 'string' || user.trim() === '') {
      throw new Error(`tokens file ${file}: entry ${position} must map a non-empty token to a user name`);
    }
    result.push({ sha256: tokenDigest(token), user: user.trim(), plaintext: true });
  }
  return result;
}

function writeTokensFile(file: string, tokens: readonly StoredToken[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const stored = tokens.map(({ sha256, user }) => ({ sha256, user }));
  writePrivateFile(file, JSON.stringify({ tokens: stored }, null, 2) + '\n');
}

/** Rewrites a tokens file in the plaintext form with digests; returns how many tokens it rewrote (0: nothing to do). */
export function migrateTokensFile(file: string): number {
  if (!fs.existsSync(file)) return 0;
  const tokens = readTokensFile(file);
  const plaintext = tokens.filter((t) => t.plaintext).length;
  if (plaintext > 0) writeTokensFile(file, tokens);
  return plaintext;
}

/**
 * Creates a random token for `user`, adds its digest to the tokens file (created 0600 when missing, migrated to
 * digests when in the old form) and returns the token: the only time it exists outside the caller's hands.
 */
export function createToken(file: string, user: string): string {
  const name = user.trim();
  if (name === '') throw new Error('a token needs a user name');
  const token = randomBytes(32).toString('base64url');
  const tokens = fs.existsSync(file) ? readTokensFile(file) : [];
  writeTokensFile(file, [...tokens, { sha256: tokenDigest(token), user: name }]);
  return token;
}

function writePrivateFile(file: string, content: string): void {
  // Write then rename, so a reader (the API re-reading tokens.json) never sees half a file.
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, content, { mode: 0o600 });
  fs.chmodSync(temporary, 0o600);
  fs.renameSync(temporary, file);
}

export interface EnsureLocalTokenOptions {
  /** Default resolveTokensFile(process.env, home): the same file the API's token store reads. */
  tokensFile?: string;
}

/**
 * Makes sure `user` has a token for the local CLI: reuses the one in `<home>/token` when the tokens file maps its
 * digest to `user`, otherwise creates a random one, adds its digest to the tokens file and writes the token to
 * `<home>/token` (mode 0600), the CLI's copy. Returns the token, for `npm start` to print.
 */
export function ensureLocalToken(home: string, user: string, options: EnsureLocalTokenOptions = {}): string {
  if (user.trim() === '') throw new Error('ensureLocalToken needs a user name');
  const homeDir = path.resolve(home);
  const tokensFile = options.tokensFile ?? resolveTokensFile(process.env, homeDir);
  const tokenPath = path.join(homeDir, 'token');
  ensurePrivateHome(homeDir);

  const tokens = fs.existsSync(tokensFile) ? readTokensFile(tokensFile) : [];
  const saved = fs.existsSync(tokenPath) ? fs.readFileSync(tokenPath, 'utf8').trim() : '';
  if (saved !== '' && tokens.some((t) => t.sha256 === tokenDigest(saved) && t.user === user)) {
    // Known: only make sure no plaintext stays in the tokens file and the CLI's copy is private.
    if (tokens.some((t) => t.plaintext)) writeTokensFile(tokensFile, tokens);
    fs.chmodSync(tokenPath, 0o600);
    return saved;
  }
  const token = createToken(tokensFile, user);
  writePrivateFile(tokenPath, token + '\n');
  return token;
}
