// Who is calling: the bearer value of a request made into an Identity (a user name and its role grants). A value
// that looks like a JWT (three base64url parts) is an OIDC token and goes to the OIDC verifier; anything else is a
// static token, looked up by digest in the token store. Static tokens never contain dots, so the two never meet.
import type { TokenStore } from '../../client/auth';
import { FerryError } from '../../client/errors';
import type { Identity, RoleBook } from '../roles';
import { looksLikeJwt, type OidcVerifier } from './oidc';

export interface Authenticator {
  /** The caller's identity; throws FerryError Unauthenticated (unknown or invalid), Forbidden or Unavailable (OIDC). */
  authenticate(bearer: string): Promise<Identity>;
}

export function createAuthenticator(options: {
  tokens: TokenStore;
  roles: RoleBook;
  oidc?: OidcVerifier;
}): Authenticator {
  const { tokens, roles, oidc } = options;
  return {
    async authenticate(bearer) {
      if (looksLikeJwt(bearer)) {
        if (!oidc) {
          throw new FerryError(
            'Unauthenticated',
            'OIDC tokens are not accepted: the server configuration names no OIDC issuer',
          );
        }
        return oidc.verify(bearer);
      }
      const user = tokens.userForToken(bearer);
      if (user === undefined) throw new FerryError('Unauthenticated', 'the bearer token is not valid');
      return { user, source: 'token', grants: roles.grantsFor(user, 'token') };
    },
  };
}
