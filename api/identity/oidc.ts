// OpenID Connect identities: a CI job (GitHub Actions, GitLab CI) presents the JWT its platform issued to it, and
// needs no stored secret. A token is accepted when an issuer in the server configuration signed it (checked against
// the issuer's JWKS, fetched from its discovery document unless `jwksUri` names it), it is for our audience, within
// its lifetime (`exp`, `nbf`, with a small clock tolerance), signed with an allowed asymmetric algorithm (never
// `none`, never a shared secret), and a rule of that issuer matches its claims. The rule names the Ferry user
// (a template over the claims, such as `github:{repository}@{ref}`) and its roles.
//
// The JWKS is cached; a token with a key id the cache does not know makes jose fetch the JWKS again (key rotation),
// at most once per `jwksCooldown`, so garbage tokens cannot make Ferry hammer the issuer.
import {
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type FetchImplementation,
  type JWTPayload,
} from 'jose';
import { FerryError } from '../../client/errors';
import { logger as defaultLogger, type Logger } from '../../client/log';
import { globMatches, type Grant, type Identity, type RoleBook } from '../roles';
import { durationMs, type IssuerConfig, type OidcRule } from '../server-config';

/** Three base64url parts, the last possibly empty (an unsigned `alg: none` token is refused, but by the OIDC check). */
export const looksLikeJwt = (value: string): boolean => /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(value);

export interface OidcVerifier {
  /** The identity behind a JWT; throws FerryError Unauthenticated (bad token), Forbidden (no rule), Unavailable. */
  verify(token: string): Promise<Identity>;
}

export interface OidcVerifierOptions {
  roles: RoleBook;
  logger?: Logger;
  /** For tests and proxies; default the global fetch. */
  fetch?: typeof fetch;
}

const DISCOVERY_TIMEOUT_MS = 5000;

interface IssuerState {
  config: IssuerConfig;
  jwks?: ReturnType<typeof createRemoteJWKSet>;
  resolving?: Promise<ReturnType<typeof createRemoteJWKSet>>;
}

const unauthenticated = (message: string): FerryError => new FerryError('Unauthenticated', message);

export function createOidcVerifier(issuers: readonly IssuerConfig[], options: OidcVerifierOptions): OidcVerifier {
  const log = options.logger ?? defaultLogger;
  const doFetch = options.fetch ?? fetch;
  const states = new Map<string, IssuerState>(issuers.map((config) => [config.issuer, { config }]));

  const discoverJwksUri = async (config: IssuerConfig): Promise<string> => {
    const url = `${config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    let document: { issuer?: unknown; jwks_uri?: unknown };
    try {
      const response = await doFetch(url, { signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      document = (await response.json()) as typeof document;
    } catch (err) {
      log.warn('OIDC discovery failed', { issuer: config.issuer, url, reason: String(err) });
      throw new FerryError(
        'Unavailable',
        `cannot read the discovery document of OIDC issuer ${config.issuer} (${url}); try again, or set jwksUri for it in the server configuration`,
      );
    }
    if (document.issuer !== config.issuer || typeof document.jwks_uri !== 'string') {
      throw new FerryError(
        'Unavailable',
        `the discovery document of OIDC issuer ${config.issuer} names issuer ${JSON.stringify(document.issuer)} ` +
          'or has no jwks_uri; check the issuer URL in the server configuration',
      );
    }
    return document.jwks_uri;
  };

  const jwksOf = async (state: IssuerState): Promise<ReturnType<typeof createRemoteJWKSet>> => {
    if (state.jwks) return state.jwks;
    state.resolving ??= (async () => {
      const uri = state.config.jwksUri ?? (await discoverJwksUri(state.config));
      const jwks = createRemoteJWKSet(new URL(uri), {
        cooldownDuration: durationMs(state.config.jwksCooldown),
        cacheMaxAge: 10 * 60_000,
        timeoutDuration: DISCOVERY_TIMEOUT_MS,
        ...(options.fetch ? { [customFetch]: options.fetch as unknown as FetchImplementation } : {}),
      });
      state.jwks = jwks;
      return jwks;
    })();
    try {
      return await state.resolving;
    } finally {
      // A failed discovery is tried again by the next token, not remembered.
      state.resolving = undefined;
    }
  };

  return {
    async verify(token) {
      let claimedIssuer: unknown;
      try {
        decodeProtectedHeader(token);
        claimedIssuer = decodeJwt(token).iss;
      } catch {
        throw unauthenticated('the bearer token looks like a JWT but cannot be decoded');
      }
      const state = typeof claimedIssuer === 'string' ? states.get(claimedIssuer) : undefined;
      if (!state) {
        const accepted = [...states.keys()];
        throw unauthenticated(
          accepted.length === 0
            ? 'OIDC tokens are not accepted: the server configuration names no OIDC issuer'
            : `the OIDC token's issuer ${JSON.stringify(claimedIssuer ?? null)} is not one the server configuration trusts (${accepted.join(', ')})`,
        );
      }
      const { config } = state;
      const jwks = await jwksOf(state);
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, jwks, {
          issuer: config.issuer,
          audience: config.audience,
          algorithms: config.algorithms,
          clockTolerance: Math.round(durationMs(config.clockTolerance) / 1000),
          requiredClaims: ['exp'],
        }));
      } catch (err) {
        throw verificationError(err, config, log);
      }
      return identityOf(payload, config, options.roles);
    },
  };
}

/** A refusal that says what is wrong with the token (never the token), or Unavailable when the JWKS cannot be read. */
function verificationError(err: unknown, config: IssuerConfig, log: Logger): FerryError {
  const of = `OIDC token of ${config.issuer}`;
  if (err instanceof errors.JWTExpired) return unauthenticated(`the ${of} has expired: ask the CI job for a new one`);
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'aud':
        return unauthenticated(`the ${of} is not for this API: its "aud" must be ${JSON.stringify(config.audience)}`);
      case 'nbf':
        return unauthenticated(`the ${of} is not valid yet ("nbf" is in the future)`);
      case 'exp':
        return unauthenticated(`the ${of} has no expiry ("exp"), which Ferry requires`);
      default:
        return unauthenticated(`the ${of} fails its "${err.claim}" check: ${err.reason}`);
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return unauthenticated(`the ${of} is not signed with an allowed algorithm (${config.algorithms.join(', ')})`);
  }
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWSSignatureVerificationFailed) {
    return unauthenticated(`the ${of} is not signed by a key of the issuer's JWKS`);
  }
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || isFetchFailure(err)) {
    log.warn('OIDC JWKS could not be read', { issuer: config.issuer, reason: String(err) });
    return new FerryError('Unavailable', `cannot read the JWKS of OIDC issuer ${config.issuer}; try again`);
  }
  if (err instanceof errors.JOSEError) return unauthenticated(`the ${of} is not valid (${err.code})`);
  log.warn('OIDC verification failed unexpectedly', { issuer: config.issuer, error: err });
  return unauthenticated(`the ${of} could not be verified`);
}

function isFetchFailure(err: unknown): boolean {
  return err instanceof TypeError || (err instanceof errors.JOSEError && err.code === 'ERR_JOSE_GENERIC');
}

/** A claim as text for matching and templates; undefined for objects, arrays and absent claims. */
function claimText(payload: JWTPayload, name: string): string | undefined {
  const value = payload[name];
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean' || typeof value === 'number') return String(value);
  return undefined;
}

function ruleMatches(rule: OidcRule, payload: JWTPayload): boolean {
  return Object.entries(rule.match).every(([claim, expected]) => {
    const actual = claimText(payload, claim);
    if (actual === undefined) return false;
    const wanted = Array.isArray(expected) ? expected : [expected];
    return wanted.some((pattern) => globMatches(String(pattern), actual));
  });
}

/** `github:{repository}@{ref}` with the claims filled in; undefined when a placeholder's claim is missing. */
export function renderUserTemplate(template: string, payload: JWTPayload): string | undefined {
  let missing = false;
  const user = template.replace(/\{([A-Za-z0-9_.:-]+)\}/g, (_all, claim: string) => {
    const value = claimText(payload, claim);
    if (value === undefined) missing = true;
    return value ?? '';
  });
  return missing ? undefined : user;
}

/** The first rule (in file order) that matches the claims makes the identity; none is a 403. */
export function identityOf(payload: JWTPayload, config: IssuerConfig, roles: RoleBook): Identity {
  for (const rule of config.rules) {
    if (!ruleMatches(rule, payload)) continue;
    const user = renderUserTemplate(rule.user, payload);
    if (user === undefined || user === '') continue;
    const grants: Grant[] = [...((rule.roles ?? []) as Grant[]), ...roles.grantsFor(user, 'oidc')];
    return { user, source: config.issuer, grants };
  }
  const subject = typeof payload.sub === 'string' ? ` (sub ${JSON.stringify(payload.sub)})` : '';
  throw new FerryError(
    'Forbidden',
    `the OIDC token of ${config.issuer}${subject} is valid, but no rule of that issuer in the server configuration ` +
      'matches its claims: add a rule for it to give it a user and roles',
  );
}
