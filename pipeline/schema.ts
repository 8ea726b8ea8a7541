// The pipeline file: the one zod schema every edge validates against (HTTP API, CLI, loader).
// Workflows only `import type` from here; zod must never reach the workflow bundle.
import { z } from 'zod';

export const API_VERSION = 'ferry.dev/v1alpha1';

const dnsLabel = z
  .string()
  .max(63, 'must be at most 63 characters')
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, 'must be lowercase letters, digits and "-", starting and ending with a letter or digit');

/** A credential is referenced by name; the worker resolves it at run time. Never the secret itself. */
const credentialName = z
  .string()
  .regex(/^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/, 'must be a credential name (letters, digits, "-", "_", "."), not a secret value')
  .max(128, 'must be at most 128 characters');

const repoUrl = z
  .string()
  .regex(/^(https:\/\/|http:\/\/|ssh:\/\/|file:\/\/)\S+$/, 'must be an https://, http://, ssh:// or file:// URL')
  .refine((u) => !/^[a-z]+:\/\/[^/@]*:[^/@]*@/.test(u), 'must not contain a password; name a credential in spec.repo.credentials');

/** A git branch name as `git check-ref-format --branch` would accept it (the common subset). */
const branchName = z
  .string()
  .min(1, 'must not be empty')
  .regex(/^(?!\/|.*\/$|.*\.\.|.*\/\.|.*@\{|.*\.lock$|.*\.$)[^\s~^:?*[\\]+$/, 'must be a valid git branch name');

/** A path inside the repository: relative, forward slashes, no "..". */
const repoPath = z
  .string()
  .min(1, 'must not be empty')
  .regex(/^(?!\/)(?!.*(^|\/)\.\.(\/|$)).+$/, 'must be a relative path inside the repository without ".."');

const imageRepository = z
  .string()
  .regex(/^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._/-][a-z0-9]+)*)*$/, 'must be an image repository without tag or digest, e.g. registry.example.com/team/app');

const duration = z
  .string()
  .regex(/^\d+(ms|s|m|h)$/, 'must be a duration such as 90s, 10m or 1h');

export const ArtifactSchema = z
  .object({
    name: dnsLabel,
    image: imageRepository,
  })
  .strict();

export const RenderSchema = z
  .object({
    strategy: z.literal('branch', { error: 'only "branch" is supported in this version' }),
    engine: z.literal('plain', { error: 'only "plain" is supported in this version' }).default('plain'),
    from: repoPath,
    to: branchName,
  })
  .strict();

export const ArgoCdSchema = z
  .object({
    server: z.string().regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, 'must be an http:// or https:// URL of the Argo CD API server'),
    app: dnsLabel.or(z.string().regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/, 'must be an Argo CD application name')),
    project: z.string().min(1).optional(),
    appNamespace: z.string().min(1).optional(),
    credentials: credentialName,
    timeout: duration.default('10m'),
  })
  .strict();

export const ApprovalSchema = z
  .object({
    required: z.number().int().min(1, 'must be at least 1').default(1),
    approvers: z.array(z.string().min(1, 'must not be empty')).min(1, 'must name at least one approver'),
  })
  .strict();

export const StageSchema = z
  .object({
    name: dnsLabel,
    after: z.array(dnsLabel).default([]),
    promotion: z.enum(['auto', 'manual']).default('manual'),
    render: RenderSchema,
    argocd: ArgoCdSchema.optional(),
    approval: ApprovalSchema.optional(),
  })
  .strict();

export const RepoSchema = z
  .object({
    url: repoUrl,
    branch: branchName.default('main'),
    credentials: credentialName.optional(),
  })
  .strict();

export const PipelineSchema = z
  .object({
    apiVersion: z.literal(API_VERSION, { error: `must be "${API_VERSION}"` }),
    kind: z.literal('Pipeline', { error: 'must be "Pipeline"' }),
    metadata: z.object({ name: dnsLabel }).strict(),
    spec: z
      .object({
        repo: RepoSchema,
        artifacts: z.array(ArtifactSchema).min(1, 'must list at least one artifact'),
        stages: z.array(StageSchema).min(1, 'must list at least one stage'),
      })
      .strict(),
  })
  .strict();

/** A pipeline after validation and defaults: what workflows receive. */
export type Pipeline = z.output<typeof PipelineSchema>;
export type PipelineInput = z.input<typeof PipelineSchema>;
export type Stage = Pipeline['spec']['stages'][number];
export type Repo = Pipeline['spec']['repo'];
export type Artifact = Pipeline['spec']['artifacts'][number];
export type RenderSpec = Stage['render'];
export type ArgoCdSpec = NonNullable<Stage['argocd']>;
export type ApprovalSpec = NonNullable<Stage['approval']>;
