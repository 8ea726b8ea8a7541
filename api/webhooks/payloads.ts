// What the webhook routes accept and answer, as zod schemas: the routes validate with them, and the OpenAPI
// document is generated from them. Payloads of GitHub and GitLab are described only as far as Ferry reads them;
// every other field is allowed and ignored.
import { z } from 'zod';

const version = z.string({ error: 'must be a version string (an image tag, sha256:<digest> or a commit id)' });

// --- Headers (lowercase, as Node gives them), for the API description; the routes read them one by one.

export const GenericDeliveryHeaders = z.object({
  'x-ferry-timestamp': z
    .string()
    .regex(/^\d{1,12}$/)
    .describe('Time of signing, Unix seconds.'),
  'x-ferry-signature': z
    .string()
    .regex(/^sha256=[0-9a-fA-F]{64}$/)
    .describe('sha256= and the hex HMAC-SHA256, under the secret, of "<X-Ferry-Timestamp>.<raw body>".'),
});

export const GitHubDeliveryHeaders = z.object({
  'x-hub-signature-256': z.string().describe('sha256= and the hex HMAC-SHA256 of the raw body under the secret.'),
  'x-github-event': z.string().describe('push, package, registry_package, pull_request or ping (others are ignored).'),
  'x-github-delivery': z.string().describe('The delivery id; a repeated one within the window is a duplicate.'),
});

export const GitLabDeliveryHeaders = z.object({
  'x-gitlab-token': z.string().describe('The secret token, compared in constant time.'),
  'x-gitlab-event': z.string().describe('Push Hook or Merge Request Hook (others are ignored).'),
  'idempotency-key': z.string().optional().describe('Recognises a retried delivery.'),
  'x-gitlab-event-uuid': z
    .string()
    .optional()
    .describe('Recognises a repeated delivery when Idempotency-Key is absent.'),
});

export const GiteaDeliveryHeaders = z.object({
  'x-gitea-signature': z
    .string()
    .describe('The hex HMAC-SHA256 of the raw body under the secret (Forgejo: also X-Forgejo-Signature).'),
  'x-gitea-event': z.string().describe('push or pull_request (others are ignored); Forgejo: also X-Forgejo-Event.'),
  'x-gitea-delivery': z.string().describe('The delivery id; a repeated one within the window is a duplicate.'),
});

/** The body of `POST /webhooks/generic/{pipeline}`. */
export const GenericDeliveryBody = z
  .object({
    artifacts: z
      .record(z.string(), version, { error: 'must be an object of artifact name → version' })
      .refine((a) => Object.keys(a).length > 0, 'must name at least one artifact')
      .describe(
        'Artifact name → version. Artifacts left out take their version from the newest freight of the pipeline.',
      ),
  })
  .strict();

// --- GitHub (https://docs.github.com/en/webhooks/webhook-events-and-payloads), as far as Ferry reads it

export const GitHubRepository = z.looseObject({
  full_name: z.string({ error: 'must be the repository as owner/name' }),
  clone_url: z.string().optional(),
  html_url: z.string().optional(),
  ssh_url: z.string().optional(),
  git_url: z.string().optional(),
});

/** Every GitHub delivery Ferry acts on names its repository; that is how its secret is found. */
export const GitHubDelivery = z.looseObject({ repository: GitHubRepository });

export const GitHubPush = z.looseObject({
  ref: z.string({ error: 'must be the pushed ref, e.g. refs/heads/main' }),
  after: z.string({ error: 'must be the commit the ref now points at' }),
  deleted: z.boolean().optional(),
  repository: GitHubRepository,
});

const GitHubPackageVersion = z.looseObject({
  version: z.string({ error: 'must be the package version (for a container image, its digest)' }),
  package_url: z.string().optional(),
  container_metadata: z
    .looseObject({
      tag: z.looseObject({ name: z.string().optional(), digest: z.string().optional() }).nullish(),
    })
    .nullish(),
});

const GitHubPackage = z.looseObject({
  name: z.string({ error: 'must be the package name' }),
  namespace: z.string().optional(),
  package_type: z.string().optional(),
  ecosystem: z.string().optional(),
  package_version: GitHubPackageVersion,
});

/** `package` (package) and `registry_package` (registry_package) events: a package version was published. */
export const GitHubPackageEvent = z.looseObject({
  action: z.string(),
  package: GitHubPackage.optional(),
  registry_package: GitHubPackage.optional(),
});

export const GitHubPullRequestEvent = z.looseObject({
  action: z.string(),
  number: z.number().int(),
  pull_request: z.looseObject({
    merged: z.boolean().nullish(),
    merge_commit_sha: z.string().nullish(),
  }),
  repository: GitHubRepository,
});

// --- GitLab (https://docs.gitlab.com/user/project/integrations/webhook_events/), as far as Ferry reads it

export const GitLabProject = z.looseObject({
  path_with_namespace: z.string({ error: 'must be the project path, e.g. group/app' }),
  git_http_url: z.string().optional(),
  git_ssh_url: z.string().optional(),
  web_url: z.string().optional(),
});

export const GitLabDelivery = z.looseObject({ project: GitLabProject });

export const GitLabPush = z.looseObject({
  ref: z.string({ error: 'must be the pushed ref, e.g. refs/heads/main' }),
  after: z.string({ error: 'must be the commit the ref now points at' }),
  project: GitLabProject,
});

export const GitLabMergeRequest = z.looseObject({
  object_attributes: z.looseObject({
    iid: z.number({ error: "must be the merge request's iid" }).int(),
    action: z.string().optional(),
    merge_commit_sha: z.string().nullish(),
  }),
  project: GitLabProject,
});

// --- Gitea and Forgejo (https://docs.gitea.com/usage/webhooks), as far as Ferry reads it

export const GiteaRepository = z.looseObject({
  full_name: z.string({ error: 'must be the repository as owner/name' }),
  clone_url: z.string().optional(),
  html_url: z.string().optional(),
  ssh_url: z.string().optional(),
});

/** Every Gitea delivery Ferry acts on names its repository; that is how its secret is found. */
export const GiteaDelivery = z.looseObject({ repository: GiteaRepository });

export const GiteaPush = z.looseObject({
  ref: z.string({ error: 'must be the pushed ref, e.g. refs/heads/main' }),
  after: z.string({ error: 'must be the commit the ref now points at' }),
  repository: GiteaRepository,
});

export const GiteaPullRequestEvent = z.looseObject({
  action: z.string(),
  number: z.number().int(),
  pull_request: z.looseObject({
    merged: z.boolean().nullish(),
    merge_commit_sha: z.string().nullish(),
  }),
  repository: GiteaRepository,
});

// --- Answers

/** Freight registered (201) or already there (200) for one pipeline. */
export const FreightRegistered = z.object({
  pipeline: z.string(),
  id: z.string().describe('The freight id (a content hash of its versions).'),
  created: z.boolean().describe('false when the pipeline already had this freight.'),
  artifacts: z.record(z.string(), z.string()).describe('The versions of the freight, including those taken over.'),
});

/** A delivery acted on before, within the replay window: acknowledged, nothing done. */
export const DuplicateDelivery = z.object({ duplicate: z.literal(true) });

/** What a GitHub, GitLab or Gitea delivery did, per pipeline it concerns. */
export const HostDeliveryResult = z.object({
  event: z.string(),
  delivery: z.string().optional(),
  pipelines: z.array(
    z.object({
      pipeline: z.string(),
      freight: FreightRegistered.omit({ pipeline: true }).optional(),
      ignored: z.string().optional().describe('Why nothing was done for this pipeline.'),
      error: z
        .object({ code: z.string(), message: z.string() })
        .optional()
        .describe('Why this pipeline refused the freight (other pipelines may still have taken it).'),
    }),
  ),
  signalled: z.array(z.string()).optional().describe('Workflows told that the pull request was merged.'),
});

export type FreightRegistered = z.output<typeof FreightRegistered>;
export type HostDeliveryResult = z.output<typeof HostDeliveryResult>;
