// A local OpenID Connect issuer: a real HTTP server on 127.0.0.1 that serves a discovery document and a JWKS and
// signs real RS256 tokens with jose, as GitHub Actions' and GitLab's issuers do. It stands in for an issuer that
// cannot run here; its wire format is theirs:
//   GET /.well-known/openid-configuration → {"issuer", "jwks_uri", …}
//   GET /.well-known/jwks                  → {"keys": [public JWKs with kid, alg, use]}
//   GET /_apis/token?api-version=2.0&audience=X with "Authorization: bearer <request token>" → {"value": "<jwt>"}
//     (GitHub Actions' token request: a job reads ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN,
//     appends &audience=X to the URL and presents the request token; `actions` gives both values.)
// It can rotate its signing key, sign with a key it does not publish, and produce an unsigned (`alg: none`) token.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { base64url, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export interface SignOptions {
  audience?: string;
  /** Default this issuer's URL. */
  issuer?: string;
  /** Seconds from now; negative for a token that has expired. Default 300. */
  expiresIn?: number;
  /** Seconds from now for `nbf`; default none. */
  notBefore?: number;
  /** `current` (default): the published key; `foreign`: a key of the same shape that the JWKS never lists. */
  key?: 'current' | 'foreign';
}

export interface LocalOidcIssuer {
  /** The issuer URL (`iss`), e.g. http://127.0.0.1:41234. */
  url: string;
  /** What a GitHub Actions job finds in its environment to ask this issuer for a token. */
  actions: { requestUrl: string; requestToken: string };
  /** Claims of the tokens the Actions endpoint hands out (besides iss, aud, iat, exp, jti). */
  actionsClaims: Record<string, unknown>;
  /** How many times the JWKS was fetched. */
  jwksFetches(): number;
  sign(claims: JWTPayload, options?: SignOptions): Promise<string>;
  /** An unsigned token (`alg: none`) with these claims and this issuer's iss, a valid aud and exp. */
  unsigned(claims: JWTPayload, audience: string): string;
  /** A new signing key replaces the current one; `keepOld` keeps publishing the old key (a rotation's overlap). */
  rotate(options?: { keepOld?: boolean }): Promise<void>;
  close(): Promise<void>;
}

async function newKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomBytes(8).toString('hex');
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, publicJwk };
}

/** GitHub Actions' claims for a push to main of acme/guestbook, as its issuer puts them in a job's token. */
export const GITHUB_ACTIONS_CLAIMS = {
  sub: 'repo:acme/guestbook:ref:refs/heads/main',
  repository: 'acme/guestbook',
  repository_owner: 'acme',
  ref: 'refs/heads/main',
  ref_type: 'branch',
  workflow: 'build',
  event_name: 'push',
  actor: 'octocat',
  run_id: '42',
};

export async function startLocalOidcIssuer(): Promise<LocalOidcIssuer> {
  let published: SigningKey[] = [await newKey()];
  let current = published[0];
  const foreign = await newKey();
  const requestToken = randomBytes(16).toString('hex');
  let fetches = 0;
  let url = '';

  const sign = async (claims: JWTPayload, options: SignOptions = {}): Promise<string> => {
    const key = options.key === 'foreign' ? foreign : current;
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
      .setIssuer(options.issuer ?? url)
      .setIssuedAt(now)
      .setJti(randomBytes(8).toString('hex'))
      .setExpirationTime(now + (options.expiresIn ?? 300));
    if (options.audience !== undefined) jwt.setAudience(options.audience);
    if (options.notBefore !== undefined) jwt.setNotBefore(now + options.notBefore);
    return jwt.sign(key.privateKey);
  };

  const issuer: LocalOidcIssuer = {
    url: '',
    actions: { requestUrl: '', requestToken },
    actionsClaims: { ...GITHUB_ACTIONS_CLAIMS },
    jwksFetches: () => fetches,
    sign,
    unsigned(claims, audience) {
      const now = Math.floor(Date.now() / 1000);
      const part = (value: object): string => base64url.encode(JSON.stringify(value));
      return `${part({ alg: 'none', typ: 'JWT' })}.${part({ ...claims, iss: url, aud: audience, iat: now, exp: now + 300 })}.`;
    },
    async rotate(options = {}) {
      current = await newKey();
      published = options.keepOld ? [...published, current] : [current];
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };

  const server = http.createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const requestUrl = new URL(req.url ?? '/', url);
    if (req.method !== 'GET') return reply(405, { message: 'method not allowed' });
    switch (requestUrl.pathname) {
      case '/.well-known/openid-configuration':
        return reply(200, {
          issuer: url,
          jwks_uri: `${url}/.well-known/jwks`,
          subject_types_supported: ['public', 'pairwise'],
          response_types_supported: ['id_token'],
          claims_supported: ['sub', 'aud', 'exp', 'iat', 'iss', 'jti', 'nbf', 'ref', 'repository', 'workflow'],
          id_token_signing_alg_values_supported: ['RS256'],
          scopes_supported: ['openid'],
        });
      case '/.well-known/jwks':
        fetches += 1;
        return reply(200, { keys: published.map((k) => k.publicJwk) });
      case '/_apis/token': {
        if (
          req.headers.authorization !== `bearer ${requestToken}` &&
          req.headers.authorization !== `Bearer ${requestToken}`
        ) {
          return reply(401, { message: 'the request token is not valid' });
        }
        const audience = requestUrl.searchParams.get('audience') ?? undefined;
        void sign(issuer.actionsClaims, { audience }).then((value) => reply(200, { count: 1, value }));
        return;
      }
      default:
        return reply(404, { message: 'not found' });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  issuer.url = url;
  issuer.actions.requestUrl = `${url}/_apis/token?api-version=2.0`;
  return issuer;
}

/**
 * A server configuration (server.yaml) that trusts `issuer` for `audience`: its GitHub Actions tokens for
 * acme/guestbook become `github:acme/guestbook@<ref>` with role promoter on every pipeline (add `approver` and it
 * also approves and aborts), and `admins` are admins. For tests that run the CI recipes against the local stack.
 */
export function serverConfigTrusting(
  issuer: Pick<LocalOidcIssuer, 'url'>,
  options: { audience: string; admins?: string[]; ciRoles?: Array<'promoter' | 'approver' | 'viewer'> },
): string {
  const ciRoles = options.ciRoles ?? ['promoter'];
  return [
    'roles:',
    `  - { users: [${(options.admins ?? ['alice']).map((u) => JSON.stringify(u)).join(', ')}], role: admin }`,
    'oidc:',
    '  issuers:',
    `    - issuer: ${issuer.url}`,
    `      audience: ${JSON.stringify(options.audience)}`,
    '      rules:',
    '        - match: { repository: acme/guestbook }',
    '          user: "github:{repository}@{ref}"',
    `          roles: [${ciRoles.map((r) => `{ role: ${r} }`).join(', ')}]`,
    '',
  ].join('\n');
}
