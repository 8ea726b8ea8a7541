// Who may do what. A user (a static token's user or an OIDC identity) holds roles per pipeline and stage; every
// route of the HTTP API asks `requireRole` before it touches anything, and decisions carry the roles the caller
// holds on the promotion's stage so the workflow's rules (promotion-core.ts) can decide with them.
//
// The roles, each a set of rights:
//   viewer    reads pipelines, freight and promotions
//   promoter  viewer + registers freight, requests promotions, aborts the promotions it requested
//   approver  viewer + approves and rejects (when also on the stage's `approval.approvers`), aborts in its stages
//   admin     everything: applies pipelines, aborts any promotion, and holds promoter and approver
//
// A grant names a role and where it holds: `pipelines` and `stages` are lists of names or simple globs (`*` is any
// run of characters), default `["*"]`. A pipeline-wide right (applying a pipeline) needs a grant whose stages
// include `*`; reading a pipeline or registering its freight needs the role on any of its stages.
import type { Role } from '../workflows/messages';

export type { Role };
export const ROLES: readonly Role[] = ['viewer', 'promoter', 'approver', 'admin'];

export interface Grant {
  role: Role;
  /** Pipeline names or globs; default ["*"]. */
  pipelines?: readonly string[];
  /** Stage names or globs; default ["*"]. */
  stages?: readonly string[];
}

/** Who the caller is, as authentication established it: a user name and what it was granted. */
export interface Identity {
  user: string;
  /** `token` for a static token, or the issuer URL of the OIDC token. */
  source: string;
  grants: readonly Grant[];
}

/** The roles a role includes: an admin is also promoter, approver and viewer; promoter and approver are viewers. */
const INCLUDES: Record<Role, readonly Role[]> = {
  viewer: ['viewer'],
  promoter: ['promoter', 'viewer'],
  approver: ['approver', 'viewer'],
  admin: ['admin', 'promoter', 'approver', 'viewer'],
};

/** A glob where `*` matches any run of characters (`/` included) and everything else matches itself. */
export function globMatches(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  const parts = pattern.split('*');
  if (!value.startsWith(parts[0])) return false;
  let at = parts[0].length;
  for (let i = 1; i < parts.length - 1; i++) {
    const found = value.indexOf(parts[i], at);
    if (found < 0) return false;
    at = found + parts[i].length;
  }
  const last = parts[parts.length - 1];
  return value.length - last.length >= at && value.endsWith(last);
}

const anyMatches = (patterns: readonly string[] | undefined, value: string): boolean =>
  (patterns ?? ['*']).some((p) => globMatches(p, value));

/**
 * Where a right is asked for: one stage of a pipeline, every stage of it (`stage: '*'`: only a grant for all
 * stages counts), or any stage of it (`stage: undefined`: a grant for one stage is enough).
 */
export interface Scope {
  pipeline: string;
  stage?: string;
}

export function describeScope(scope: Scope): string {
  if (scope.stage === undefined) return `${scope.pipeline} (any stage)`;
  return `${scope.pipeline}/${scope.stage}`;
}

function grantCovers(grant: Grant, scope: Scope): boolean {
  if (!anyMatches(grant.pipelines, scope.pipeline)) return false;
  if (scope.stage === undefined) return true;
  // A literal "*" stage asks for the whole pipeline: only a pattern that matches every name (`*`) covers it.
  return anyMatches(grant.stages, scope.stage);
}

/** Every role the identity holds in `scope`, with what each includes (admin → promoter, approver, viewer). */
export function rolesIn(identity: Identity, scope: Scope): Role[] {
  const held = new Set<Role>();
  for (const grant of identity.grants) {
    if (grantCovers(grant, scope)) for (const role of INCLUDES[grant.role]) held.add(role);
  }
  return ROLES.filter((role) => held.has(role));
}

/** Whether the identity holds any of `roles` in `scope`. */
export function holdsRole(identity: Identity, roles: readonly Role[], scope: Scope): boolean {
  const held = rolesIn(identity, scope);
  return roles.some((role) => held.includes(role));
}

/** Whether the identity holds a role that lets it see something of `pipeline`. */
export function mayView(identity: Identity, pipeline: string): boolean {
  return holdsRole(identity, ['viewer'], { pipeline });
}

/** The 403 text: `user "eve" needs role promoter on guestbook/staging`. */
export function missingRoleMessage(user: string, roles: readonly Role[], scope: Scope): string {
  const wanted = roles.length === 1 ? roles[0] : `${roles.slice(0, -1).join(', ')} or ${roles[roles.length - 1]}`;
  return `user "${user}" needs role ${wanted} on ${describeScope(scope)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Bindings: roles given to users by name in the server configuration

export interface RoleBinding extends Grant {
  /** User names or globs (`github:acme/*`). */
  users: readonly string[];
}

export interface RoleBook {
  /** Grants for a user by name: its bindings, admin when it is in FERRY_ADMINS, and the default when nothing is configured. */
  grantsFor(user: string, source: 'token' | 'oidc'): Grant[];
  /** true when roles are configured (server configuration `roles:`); false means the documented default applies. */
  configured: boolean;
}

/**
 * The default without any `roles:` in the server configuration: every static-token user may read, register
 * freight, promote, and approve where a stage's `approvers` name it (what Ferry allowed before roles existed);
 * applying pipelines and aborting others' promotions is for admins (FERRY_ADMINS) only. OIDC identities get only
 * what their issuer's rules grant, whatever the default.
 */
export const DEFAULT_TOKEN_GRANTS: readonly Grant[] = [{ role: 'promoter' }, { role: 'approver' }];

export function createRoleBook(options: { bindings?: readonly RoleBinding[]; admins?: readonly string[] }): RoleBook {
  const bindings = options.bindings;
  const admins = options.admins ?? [];
  return {
    configured: bindings !== undefined,
    grantsFor(user, source) {
      const grants: Grant[] = [];
      if (admins.includes(user)) grants.push({ role: 'admin' });
      if (bindings === undefined) {
        if (source === 'token') grants.push(...DEFAULT_TOKEN_GRANTS);
        return grants;
      }
      for (const binding of bindings) {
        if (binding.users.some((pattern) => globMatches(pattern, user))) {
          grants.push({ role: binding.role, pipelines: binding.pipelines, stages: binding.stages });
        }
      }
      return grants;
    },
  };
}
