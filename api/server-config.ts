// The API's server configuration: who holds which roles, and which OpenID Connect issuers it trusts. A YAML file,
// `FERRY_CONFIG` or, by default, `<FERRY_HOME>/server.yaml` (absent: no OIDC issuers, and the default roles of
// api/roles.ts). Read once when the API starts; a mistake stops the start with every bad field by path.
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { resolveFerryHome } from '../client/auth';
import { formatPath } from '../pipeline/load';
import { ROLES, type RoleBinding } from './roles';

const patterns = (what: string) =>
  z
    .array(z.string().min(1, 'must not be empty'), { error: `must be a list of ${what}` })
    .min(1, `must name at least one ${what.replace(/s$/, '')}`);

const roleName = z.enum(ROLES as [string, ...string[]], { error: `must be one of ${ROLES.join(', ')}` });

const GrantSchema = z
  .object({
    role: roleName,
    pipelines: patterns('pipeline names or globs').optional(),
    stages: patterns('stage names or globs').optional(),
  })
  .strict();

const BindingSchema = GrantSchema.extend({ users: patterns('user names or globs') }).strict();

const duration = z
  .string({ error: 'must be a duration such as 30s or 5m' })
  .regex(/^\d+(ms|s|m|h)$/, 'must be a duration such as 30s or 5m');

/** Asymmetric algorithms only: a shared-secret (HS*) or unsigned (`none`) token is never an identity. */
export const OIDC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

const claimValue = z.union([z.string(), z.boolean(), z.number()], {
  error: 'must be a string, true/false or a number',
});

const RuleSchema = z
  .object({
    match: z
      .record(
        z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'must be a claim name'),
        z.union([claimValue, z.array(claimValue)]),
      )
      .refine((m) => Object.keys(m).length > 0, {
        message: 'must name at least one claim: a rule without one would match every token the issuer signs',
      }),
    user: z
      .string({ error: 'must be a user name template such as github:{repository}@{ref}' })
      .min(1, 'must not be empty')
      .refine((t) => !/\{(?![A-Za-z0-9_.:-]+\})/.test(t), 'every "{" must start a {claim} placeholder'),
    roles: z.array(GrantSchema).optional(),
  })
  .strict();

const IssuerSchema = z
  .object({
    issuer: z.url({ error: 'must be the issuer URL, exactly as in the tokens\' "iss" claim' }),
    audience: z.string({ error: 'is required: the "aud" the tokens must carry' }).min(1, 'must not be empty'),
    jwksUri: z.url({ error: 'must be a URL' }).optional(),
    algorithms: z
      .array(
        z.enum(OIDC_ALGORITHMS as [string, ...string[]], { error: `must be one of ${OIDC_ALGORITHMS.join(', ')}` }),
      )
      .min(1)
      .default(['RS256', 'ES256']),
    clockTolerance: duration.default('30s'),
    jwksCooldown: duration.default('30s'),
    rules: z.array(RuleSchema).min(1, 'must list at least one rule: a token no rule matches is refused'),
  })
  .strict();

export const ServerConfigSchema = z
  .object({
    roles: z.array(BindingSchema).optional(),
    oidc: z
      .object({ issuers: z.array(IssuerSchema).default([]) })
      .strict()
      .optional(),
  })
  .strict();

export type ServerConfig = z.output<typeof ServerConfigSchema>;
export type IssuerConfig = z.output<typeof IssuerSchema>;
export type OidcRule = IssuerConfig['rules'][number];

/** `FERRY_CONFIG`, default `<FERRY_HOME>/server.yaml`; `explicit` says whether the operator named it. */
export function resolveServerConfigFile(env: NodeJS.ProcessEnv = process.env): { file: string; explicit: boolean } {
  if (env.FERRY_CONFIG) return { file: path.resolve(env.FERRY_CONFIG), explicit: true };
  return { file: path.join(resolveFerryHome(env), 'server.yaml'), explicit: false };
}

/** Parses and validates configuration text; throws one Error listing every mistake by path. */
export function parseServerConfig(text: string, source: string): ServerConfig {
  let document: unknown;
  try {
    document = parseYaml(text) ?? {};
  } catch (err) {
    throw new Error(`server configuration ${source} is not valid YAML: ${err instanceof Error ? err.message : err}`);
  }
  const result = ServerConfigSchema.safeParse(document);
  if (!result.success) {
    const lines = result.error.issues.map(
      (issue) =>
        `  ${formatPath(issue.path) || '(root)'}: ${issue.code === 'unrecognized_keys' ? `unknown field ${issue.keys.join(', ')}` : issue.message}`,
    );
    throw new Error(`server configuration ${source} is invalid:\n${lines.join('\n')}`);
  }
  return result.data;
}

/** Reads the server configuration; a missing default file is an empty configuration, a missing named one an error. */
export function loadServerConfig(env: NodeJS.ProcessEnv = process.env): { config: ServerConfig; file?: string } {
  const { file, explicit } = resolveServerConfigFile(env);
  if (!fs.existsSync(file)) {
    if (explicit) throw new Error(`FERRY_CONFIG names ${file}, which does not exist`);
    return { config: {} };
  }
  return { config: parseServerConfig(fs.readFileSync(file, 'utf8'), file), file };
}

export function roleBindingsOf(config: ServerConfig): RoleBinding[] | undefined {
  return config.roles as RoleBinding[] | undefined;
}

/** "30s" → 30000. */
export function durationMs(value: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(value);
  if (!match) throw new Error(`not a duration: ${value}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}

/** What `npm start` writes once: the local user is an admin, so the README's walkthrough can apply and approve. */
export function localServerConfigYaml(user: string): string {
  return `# Ferry API server configuration (docs/integrations.md#identities-and-roles).
# Roles: viewer, promoter, approver, admin; per pipeline and stage (globs with *).
roles:
  - users: [${user}]
    role: admin
  - users: [bob]
    role: approver
    pipelines: [guestbook]
    stages: [prod]
# oidc:
#   issuers:
#     - issuer: https://token.actions.githubusercontent.com
#       audience: ferry
#       rules:
#         - match: { repository: acme/guestbook, ref: refs/heads/main }
#           user: "github:{repository}@{ref}"
#           roles: [{ role: promoter, pipelines: [guestbook], stages: [dev, staging] }]
`;
}
