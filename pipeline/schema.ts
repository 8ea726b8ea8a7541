// The pipeline file: the one zod schema every edge validates against (HTTP API, CLI, loader).
// Workflows only `import type` from here; zod must never reach the workflow bundle.
// The `.describe()` texts are user documentation: scripts/gen-docs.ts turns them into docs/reference/pipeline.md
// and the JSON Schema editors show them on hover. Write them for someone editing a pipeline file.
import { z } from 'zod';
import { EVENT_TYPES, eventTypeMatches } from './event-types';
import { branchNameProblem, MAX_BRANCH_BYTES, repoPathProblem } from './git-names';
import { JSON_PATH_RULES, parseJsonPath } from './json-path';

export const API_VERSION = 'ferry.dev/v1alpha1';

const dnsLabel = z
  .string()
  .max(63, 'must be at most 63 characters')
  .regex(
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
    'must be lowercase letters, digits and "-", starting and ending with a letter or digit',
  );

/** A credential is referenced by name; the worker resolves it at run time. Never the secret itself. */
const credentialName = z
  .string()
  .regex(
    /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/,
    'must be a credential name (letters, digits, "-", "_", "."), not a secret value',
  )
  .max(128, 'must be at most 128 characters');

const repoUrl = z
  .string()
  .regex(/^(https:\/\/|http:\/\/|ssh:\/\/|file:\/\/)\S+$/, 'must be an https://, http://, ssh:// or file:// URL')
  // A user name in an https URL is usually a token (`https://TOKEN@host/…`): it would land in git config and in
  // workflow history. ssh:// keeps its user (`ssh://git@host/…`), never a password.
  .refine(
    (u) => !/^[a-z]+:\/\/[^/@]*:[^/@]*@/.test(u),
    'must not contain a password; name a credential in spec.repo.credentials',
  )
  .refine(
    (u) => !/^https?:\/\/[^/:@]*@/.test(u),
    'must not contain a user name or token; name a credential in spec.repo.credentials',
  );

/** A git branch name, by git's own rules (`git check-ref-format --branch`); see git-names.ts. */
const branchName = z.string().superRefine((name, ctx) => {
  const problem = branchNameProblem(name);
  if (problem) {
    ctx.addIssue({
      code: 'custom',
      message: name === '' ? 'must not be empty' : `not a valid git branch name: ${problem}`,
    });
  }
});

const BRANCH_RULES =
  `A git branch name, by git's rules: not \`HEAD\`, not starting with \`-\` or \`/\`, no \`..\`, \`@{\`, \`//\`, ` +
  `spaces, control characters or any of \`~^:?*[\\\`, no path component starting with \`.\` or ending with ` +
  `\`.lock\`, not ending with \`/\` or \`.\`, and at most ${MAX_BRANCH_BYTES} bytes.`;

/** A path inside the repository: relative, forward slashes, no "..", no control characters. */
const repoPath = z.string().superRefine((path, ctx) => {
  const problem = repoPathProblem(path);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const imageRepository = z
  .string()
  .regex(
    /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._/-][a-z0-9]+)*)*$/,
    'must be an image repository without tag or digest, e.g. registry.example.com/team/app',
  );

const duration = z.string().regex(/^\d+(ms|s|m|h)$/, 'must be a duration such as 90s, 10m or 1h');

export const GitArtifactSchema = z
  .object({
    url: repoUrl.describe(
      'URL of the git repository the artifact is a commit of (`https://`, `http://`, `ssh://` or `file://`). When it ' +
        "is the pipeline's own repository (`spec.repo.url`) and `branch` is `spec.repo.branch`, promotions render " +
        "`render.from` at the freight's commit instead of the branch's head.",
    ),
    branch: branchName
      .default('main')
      .describe(
        `Branch whose commits are this artifact's versions. A push to it (through a webhook) registers freight; a ` +
          `commit must be reachable from it to be rendered. ${BRANCH_RULES}`,
      ),
  })
  .strict()
  .describe("A git artifact: its versions are full commit ids of `branch` (a push's `after`, `git rev-parse HEAD`).");

export const ArtifactSchema = z
  .object({
    name: dnsLabel.describe(
      'Name of the artifact, unique in the pipeline. Freight names it: `ferry freight add guestbook guestbook=1.4.2`.',
    ),
    image: imageRepository
      .optional()
      .describe(
        'Container image repository, without tag or digest. On promotion, every reference to this image in the ' +
          "stage's manifests is set to the freight's version of the artifact. Give either `image` or `git`.",
      ),
    git: GitArtifactSchema.optional(),
  })
  .strict()
  .superRefine((artifact, ctx) => {
    if ((artifact.image === undefined) === (artifact.git === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message:
          artifact.image === undefined
            ? 'must give either image (a container image repository) or git ({ url, branch })'
            : 'must give either image or git, not both',
      });
    }
  })
  .describe(
    'Something a release is made of: a container image (`image`, versions are tags or digests) or a git ' +
      'repository (`git`, versions are commit ids).',
  );

/** Where a `render.set` value comes from: the freight's version of an artifact, or a part of it. */
export const SET_VALUE_KINDS = ['version', 'tag', 'digest', 'reference', 'repository'] as const;

/** A key inside a YAML document: `image.tag`, `spec.template.spec.containers[0].image`. */
const yamlKeyPath = z
  .string()
  .regex(
    /^[A-Za-z0-9_-]+(\[\d+\])*(\.[A-Za-z0-9_-]+(\[\d+\])*)*$/,
    'must be a key path such as image.tag or spec.containers[0].image (names of letters, digits, "_" and "-", joined by ".", with [n] for list items)',
  );

export const SetValueSchema = z
  .object({
    key: yamlKeyPath.describe(
      'Where the value goes: a key path in `file` (`image.tag`, `spec.template.spec.containers[0].image`), or, ' +
        'without `file` and with engine `helm`, a chart value passed as `--set-string KEY=VALUE`.',
    ),
    artifact: dnsLabel.describe('The artifact whose version is written.'),
    value: z
      .enum(SET_VALUE_KINDS)
      .default('version')
      .describe(
        "What of the artifact's version is written: `version` (the freight's version as given, a tag or a digest), " +
          '`tag` (the tag; a digest freight fails), `digest` (the digest; a tag freight fails), `reference` ' +
          '(`repository:tag` or `repository@digest`), `repository` (the image repository alone). For a `git` ' +
          'artifact, `version` is the commit id.',
      ),
    file: repoPath
      .optional()
      .describe(
        'The YAML file to edit, relative to `render.from` (`branch`, `pull-request` into a branch) or to the ' +
          'stage directory `render.to` (`directory`). Only the value changes: comments, key order and quoting stay. ' +
          'The key must exist. Without `file`, only for engine `helm`.',
      ),
  })
  .strict()
  .describe(
    'One value Ferry sets from the freight, besides the image references it always sets: a Helm values path, a tag in a config file.',
  );

export const HelmSchema = z
  .object({
    releaseName: dnsLabel.optional().describe("Release name given to `helm template`. Default: the pipeline's name."),
    namespace: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, 'must be a Kubernetes namespace name')
      .max(63, 'must be at most 63 characters')
      .optional()
      .describe('Namespace passed as `--namespace`. Default: none (helm uses `default`).'),
    valuesFiles: z
      .array(repoPath)
      .default([])
      .describe('Values files passed as `-f`, in order, relative to the chart directory `render.from`.'),
    kubeVersion: z
      .string()
      .regex(/^v?\d+\.\d+(\.\d+)?$/, 'must be a Kubernetes version such as 1.31.0')
      .optional()
      .describe('Kubernetes version for `Capabilities.KubeVersion` (`--kube-version`).'),
    apiVersions: z
      .array(z.string().min(1, 'must not be empty'))
      .optional()
      .describe('Extra API versions for `Capabilities.APIVersions` (`--api-versions`).'),
    includeCRDs: z
      .boolean({ error: 'must be true or false' })
      .default(false)
      .describe("Whether the chart's CRDs are rendered too (`--include-crds`)."),
  })
  .strict()
  .describe(
    '`helm template` options. The chart is `render.from`; its dependencies must be in its `charts/` directory or ' +
      'a `file://` path in the repository (Ferry does not download charts).',
  );

export const PULL_REQUEST_PROVIDERS = ['github', 'gitlab', 'gitea'] as const;

export const PullRequestSchema = z
  .object({
    target: z
      .enum(['branch', 'directory'])
      .default('branch')
      .describe(
        'What the pull request changes: `branch`, the rendered branch `render.to` (as the `branch` strategy would ' +
          'write it); `directory`, the stage directory `render.to` on `spec.repo.branch` (as `directory` would).',
      ),
    provider: z
      .enum(PULL_REQUEST_PROVIDERS)
      .describe('The git host: `github` (and GitHub Enterprise), `gitlab`, `gitea` (and Forgejo).'),
    api: z
      .string()
      .regex(/^https?:\/\/[^\s/@]+(\/\S*)?$/, 'must be an http:// or https:// URL without a user name or password')
      .optional()
      .describe(
        "Base URL of the host's REST API. Default: `https://api.github.com` (github), `https://gitlab.com/api/v4` " +
          "(gitlab), the repository URL's origin + `/api/v1` (gitea). GitHub Enterprise: `https://HOST/api/v3`.",
      ),
    credentials: credentialName
      .optional()
      .describe('Name of the credential holding an API token for the host. Default: `spec.repo.credentials`.'),
    pollInterval: duration
      .default('30s')
      .describe(
        'How often Ferry asks the host whether the pull request was merged or closed. A webhook from the host ' +
          '(`spec.triggers`) wakes the promotion at once.',
      ),
    timeout: duration
      .default('168h')
      .describe('How long to wait for the merge before the promotion fails with reason `PullRequestTimedOut`.'),
    approvalOnHost: z
      .boolean({ error: 'must be true or false' })
      .default(false)
      .describe(
        "Whether approving reviews on the pull request count as the stage's `approval`: the promotion opens the " +
          'pull request without waiting in `AwaitingApproval`, and once it is merged, the approving reviews of ' +
          "users on `approval.approvers` (host user names) are the stage's approvals; merged with fewer than " +
          '`approval.required` fails with reason `PullRequestNotApproved`, before Argo CD is synced.',
      ),
    labels: z.array(z.string().min(1, 'must not be empty')).optional().describe('Labels put on the pull request.'),
  })
  .strict()
  .describe('Where and how the `pull-request` strategy opens its pull request, and how long it waits.');

export const RENDER_STRATEGIES = ['branch', 'directory', 'pull-request'] as const;
export const RENDER_ENGINES = ['plain', 'kustomize', 'helm'] as const;

export const RenderSchema = z
  .object({
    strategy: z
      .enum(RENDER_STRATEGIES)
      .describe(
        'How the manifests reach git. `branch`: Ferry renders `from` into the branch `to`, which it owns (files ' +
          'it did not write are left alone). `directory`: trunk-based; the stage is the directory `to` on ' +
          '`spec.repo.branch`, and Ferry edits the versions in it in place and commits to that branch. ' +
          '`pull-request`: Ferry pushes a promotion branch and opens a pull request against the branch or ' +
          'directory (`pullRequest.target`), waits until it is merged and continues with the merge commit.',
      ),
    engine: z
      .enum(RENDER_ENGINES)
      .default('plain')
      .describe(
        'How manifests are rendered. `plain`: the files are written as they are, except that references to the ' +
          "pipeline's images (and `images:` entries of kustomization.yaml) are set to the freight's versions; " +
          'comments are kept. `kustomize`: `kustomize build` of `from` with the images set (`kustomize edit set ' +
          'image`). `helm`: `helm template` of the chart `from` with `helm` options and `set` values. `directory` ' +
          'edits in place and takes `plain` only.',
      ),
    from: repoPath
      .optional()
      .describe(
        "Directory on `spec.repo.branch` holding the stage's source manifests (the chart, for helm), relative to " +
          'the repository root (no `..`, no absolute path, no control characters). Required for `branch` and for ' +
          '`pull-request` into a branch; not used by `directory`, which edits `to` itself.',
      ),
    to: z
      .string()
      .describe(
        "Where the stage's manifests are written. For `branch` and `pull-request` into a branch: the branch its " +
          `Argo CD application tracks, different from \`spec.repo.branch\` (${BRANCH_RULES}). For \`directory\` and ` +
          '`pull-request` into a directory: the stage directory on `spec.repo.branch` (a repository path, not the root).',
      ),
    output: repoPath
      .optional()
      .describe(
        'The file `kustomize` and `helm` write their output to, relative to the root of the rendered branch. ' +
          'Default: `manifests.yaml`.',
      ),
    set: z
      .array(SetValueSchema)
      .optional()
      .describe('Values Ferry sets from the freight besides the image references it always sets.'),
    helm: HelmSchema.optional(),
    pullRequest: PullRequestSchema.optional(),
  })
  .strict()
  .superRefine((render, ctx) => {
    const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const layout = render.strategy === 'pull-request' ? (render.pullRequest?.target ?? 'branch') : render.strategy;
    if (render.strategy === 'pull-request' && !render.pullRequest)
      issue(['pullRequest'], 'is required with strategy pull-request: give at least pullRequest.provider');
    if (render.strategy !== 'pull-request' && render.pullRequest)
      issue(['pullRequest'], `is only for strategy pull-request, not ${render.strategy}`);
    if (layout === 'branch') {
      if (render.from === undefined)
        issue(['from'], `is required: the directory on spec.repo.branch to render into branch ${render.to}`);
      const problem = branchNameProblem(render.to);
      if (problem) issue(['to'], render.to === '' ? 'must not be empty' : `not a valid git branch name: ${problem}`);
    } else {
      const what = render.strategy === 'pull-request' ? 'pull-request into a directory' : 'directory';
      if (render.from !== undefined)
        issue(['from'], `is not used by ${what}: Ferry edits the stage directory render.to in place; remove from`);
      if (render.engine !== 'plain')
        issue(['engine'], `${what} edits the stage directory in place and takes engine plain, not ${render.engine}`);
      const problem = repoPathProblem(render.to);
      if (problem) issue(['to'], problem);
      else if (render.to.replace(/^(\.\/)+/, '').replace(/\/$/, '') === '.')
        issue(['to'], 'must be a directory, not the repository root');
    }
    if (render.helm && render.engine !== 'helm') issue(['helm'], `is only for engine helm, not ${render.engine}`);
    render.set?.forEach((entry, i) => {
      if (entry.file === undefined && render.engine !== 'helm')
        issue(['set', i, 'file'], `is required with engine ${render.engine}: the YAML file to edit`);
    });
  })
  .describe("How the stage's manifests are produced from the sources and written to git.");

export const ArgoCdSchema = z
  .object({
    server: z
      .string()
      .regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, 'must be an http:// or https:// URL of the Argo CD API server')
      .describe('URL of the Argo CD API server, e.g. `https://argocd.example.com`.'),
    app: z
      .string()
      .max(253, 'must be at most 253 characters')
      .regex(
        /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/,
        'must be an Argo CD application name (lowercase letters, digits, "-" and ".")',
      )
      .describe("Name of the Argo CD application that deploys the stage's branch."),
    project: z.string().min(1, 'must not be empty').optional().describe('Argo CD project the application belongs to.'),
    appNamespace: z
      .string()
      .min(1, 'must not be empty')
      .optional()
      .describe(
        "Namespace of the Application resource, for Argo CD's applications-in-any-namespace. Omit for the default.",
      ),
    credentials: credentialName.describe(
      'Name of the credential holding the Argo CD API token, resolved on the worker (never the token itself).',
    ),
    timeout: duration
      .default('10m')
      .describe(
        'How long to wait for the application to be synced and healthy at the new commit before the promotion fails.',
      ),
    degradedGrace: duration
      .default('30s')
      .describe(
        'How long the application may report Degraded at the new commit, when nothing else was seen there yet, ' +
          'before the promotion fails (a rollout can look Degraded for a moment before it progresses). Not waited ' +
          'out when a resource reports a terminal reason (progress deadline exceeded, image pull back-off, crash ' +
          'loop, invalid image, container config error), nor after Progressing was seen: then Degraded fails at once.',
      ),
    unhealthyGrace: duration
      .default('60s')
      .describe(
        'How long health may stay Missing or Unknown, or the application carry an error condition, at the new ' +
          'commit before the promotion fails. An `InvalidSpecError` condition fails at once.',
      ),
  })
  .strict()
  .describe(
    'The Argo CD application that deploys the stage. Ferry syncs it to the commit it wrote and waits until it is ' +
      'healthy at that revision. Without it, the stage is done when git is written.',
  );

export const ApprovalSchema = z
  .object({
    required: z
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .default(1)
      .describe('How many different approvers must approve before the promotion proceeds.'),
    approvers: z
      .array(z.string().min(1, 'must not be empty'))
      .min(1, 'must name at least one approver')
      .describe(
        "Users who may approve or reject: Ferry user names (a static token's user, or the name an OIDC rule " +
          'gives, such as `github:acme/app@refs/heads/main`). A user on this list also needs role `approver` ' +
          '(or `admin`) on the stage; a user with that role who is not on this list may not approve.',
      ),
    allowSelfApproval: z
      .boolean({ error: 'must be true or false' })
      .optional()
      .describe(
        'Whether the user who requested a promotion may approve it. Default `true`. With `false`, another ' +
          'approver must approve (the requester may still reject or abort it).',
      ),
  })
  .strict()
  .describe(
    'A human gate: the promotion waits in `AwaitingApproval` until `required` of the `approvers` approve it; one ' +
      'rejection ends it.',
  );

export const CallbackGateSchema = z
  .object({
    timeout: duration
      .default('1h')
      .describe(
        'How long to wait for the external system to post its result before the promotion fails with reason ' +
          '`GateTimedOut`.',
      ),
  })
  .strict()
  .describe(
    'Wait for another system (an end-to-end suite, a change-management tool) to post `pass` or `fail`. Ferry ' +
      'issues a one-time callback URL for the gate (`POST /api/v1/callbacks/<token>`) and sends it in the ' +
      '`dev.ferry.gate.waiting` event; an admin can also read it with `ferry gate url PROMOTION GATE`.',
  );

const jsonScalar = z.union([z.string(), z.number(), z.boolean()], {
  error: 'must be a string, a number or true/false',
});

export const HttpGateExpectSchema = z
  .object({
    status: z
      .number()
      .int('must be a whole number')
      .min(100, 'must be an HTTP status code (100-599)')
      .max(599, 'must be an HTTP status code (100-599)')
      .default(200)
      .describe('The HTTP status code a passing answer has.'),
    jsonPath: z
      .string()
      .superRefine((path, ctx) => {
        const parsed = parseJsonPath(path);
        if ('problem' in parsed) ctx.addIssue({ code: 'custom', message: parsed.problem });
      })
      .optional()
      .describe(`Where in the answer's JSON body to look, e.g. \`$.status\`. ${JSON_PATH_RULES} Needs \`equals\`.`),
    equals: jsonScalar
      .optional()
      .describe(
        'The value found at `jsonPath` in a passing answer (a string, number or true/false, compared exactly). ' +
          'Needs `jsonPath`.',
      ),
  })
  .strict()
  .superRefine((expect, ctx) => {
    if (expect.jsonPath !== undefined && expect.equals === undefined)
      ctx.addIssue({ code: 'custom', path: ['equals'], message: 'is required with jsonPath' });
    if (expect.equals !== undefined && expect.jsonPath === undefined)
      ctx.addIssue({ code: 'custom', path: ['jsonPath'], message: 'is required with equals' });
  })
  .describe('What a passing answer looks like: its status code and, optionally, one value in its JSON body.');

export const HttpGateSchema = z
  .object({
    url: z
      .string()
      .regex(/^https?:\/\/[^\s/@]+(\/\S*)?$/, 'must be an http:// or https:// URL without a user name or password')
      .describe(
        'The URL to poll. Not a secret: it is part of the pipeline; put a token in `credentials` instead of the URL.',
      ),
    method: z
      .enum(['GET', 'HEAD'], { error: 'must be GET or HEAD' })
      .default('GET')
      .describe('The HTTP method of each poll.'),
    credentials: credentialName
      .optional()
      .describe(
        'Name of a credential sent with every poll, resolved on the worker: its `token` as ' +
          '`Authorization: Bearer <token>`, or its `username` and `password` as basic authentication.',
      ),
    expect: HttpGateExpectSchema.default({ status: 200 }),
    interval: duration.default('10s').describe('How long to wait between two polls.'),
    successes: z
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(100, 'must be at most 100')
      .default(1)
      .describe(
        'How many passing answers in a row the gate needs. An answer that does not pass (or no answer) starts ' +
          'the count again.',
      ),
    timeout: duration
      .default('5m')
      .describe(
        'How long the gate may poll before the promotion fails with reason `GateTimedOut` and the last answer seen.',
      ),
  })
  .strict()
  .describe(
    'Poll a URL until it gives `successes` passing answers in a row (the expected status and, optionally, a ' +
      'value in its JSON body).',
  );

export const GateSchema = z
  .object({
    name: dnsLabel.describe(
      'Name of the gate, unique in the stage. It names the gate in the status, the events and the callback URL.',
    ),
    callback: CallbackGateSchema.optional(),
    http: HttpGateSchema.optional(),
  })
  .strict()
  .superRefine((gate, ctx) => {
    const kinds = [gate.callback, gate.http].filter((k) => k !== undefined).length;
    if (kinds !== 1)
      ctx.addIssue({
        code: 'custom',
        message: kinds === 0 ? 'must have one of callback or http' : 'must have only one of callback or http',
      });
  })
  .describe(
    'A check by another system that the promotion must pass after the app is healthy (or, without `argocd`, ' +
      'after the git write) and before it succeeds. Each gate is `callback` or `http`.',
  );

export const StageSchema = z
  .object({
    name: dnsLabel.describe('Name of the stage (the environment), unique in the pipeline.'),
    after: z
      .array(dnsLabel)
      .default([])
      .describe(
        'Stages this stage comes after. Freight is available to the stage once it has been promoted successfully ' +
          'into every one of them. A stage with no `after` takes any freight.',
      ),
    promotion: z
      .enum(['auto', 'manual'])
      .default('manual')
      .describe(
        '`auto`: new freight is promoted into the stage as soon as it is available. `manual`: promotions are ' +
          'requested through the API or CLI.',
      ),
    render: RenderSchema,
    argocd: ArgoCdSchema.optional(),
    approval: ApprovalSchema.optional(),
    gates: z
      .array(GateSchema)
      .superRefine((gates, ctx) => {
        const seen = new Set<string>();
        gates.forEach((gate, i) => {
          if (seen.has(gate.name))
            ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate gate name "${gate.name}"` });
          seen.add(gate.name);
        });
      })
      .optional()
      .describe(
        'Gates the promotion passes, in order, once the app is healthy (or, without `argocd`, once git is written), ' +
          'before it succeeds. Names are unique in the stage. A gate that fails or times out fails the promotion.',
      ),
  })
  .strict()
  .describe('One environment that freight is promoted into.');

export const RepoSchema = z
  .object({
    url: repoUrl.describe(
      'URL of the GitOps repository: `https://`, `http://`, `ssh://` or `file://`. Without a password in it; use `credentials`.',
    ),
    branch: branchName
      .default('main')
      .describe(`Branch holding the source (unrendered) manifests that stages render \`from\`. ${BRANCH_RULES}`),
    credentials: credentialName
      .optional()
      .describe(
        'Name of the credential for the repository (token, or username and password), resolved on the worker. ' +
          'Omit for a repository that needs none.',
      ),
  })
  .strict()
  .describe('The GitOps repository: sources on `branch`, and one rendered branch per stage.');

const httpUrl = z
  .string()
  .regex(/^https?:\/\/[^\s/@]+(\/\S*)?$/, 'must be an http:// or https:// URL without a user name or password');

export const WebhookTargetSchema = z
  .object({
    type: z.literal('webhook').describe('The kind of target: `webhook`.'),
    url: httpUrl.describe(
      'Where each event is POSTed as a CloudEvent (`Content-Type: application/cloudevents+json`), signed with ' +
        "HMAC-SHA256 under the subscriber's `secret`.",
    ),
  })
  .strict()
  .describe('An HTTP endpoint that receives every event as a signed CloudEvents 1.0 JSON POST.');

export const SlackTargetSchema = z
  .object({ type: z.literal('slack').describe('The kind of target: `slack`.') })
  .strict()
  .describe(
    "A Slack incoming webhook. Its URL is a secret, so it is the subscriber's `secret` credential (its token field), " +
      'not a field here.',
  );

export const GitHubDeploymentTargetSchema = z
  .object({
    type: z.literal('github-deployment').describe('The kind of target: `github-deployment`.'),
    repository: z
      .string()
      .regex(/^[A-Za-z0-9-]+\/[A-Za-z0-9._-]+$/, 'must be a GitHub repository as owner/name')
      .describe('The GitHub repository whose Environments page shows the stages, as `owner/name`.'),
    apiUrl: httpUrl
      .default('https://api.github.com')
      .describe('Base URL of the GitHub REST API; for GitHub Enterprise Server `https://HOST/api/v3`.'),
    productionEnvironments: z
      .array(dnsLabel)
      .optional()
      .describe(
        'Stages GitHub should treat as production environments (`production_environment: true`). Default: the ' +
          'stages named `prod` or `production`.',
      ),
  })
  .strict()
  .describe(
    "A GitHub deployment per promotion into the stage's environment, with statuses `in_progress` when the " +
      'promotion starts and `success`, `failure` or `error` when it ends; a success marks the previous deployment ' +
      "of the environment `inactive`. The subscriber's `secret` holds a token allowed to write deployments.",
  );

export const TemporalTargetSchema = z
  .object({
    type: z.literal('temporal').describe('The kind of target: `temporal`.'),
    workflowId: z
      .string()
      .min(1, 'must not be empty')
      .max(1000, 'must be at most 1000 characters')
      .describe('Id of the workflow to signal (its current run), e.g. a release train waiting for Ferry.'),
    signal: z
      .string()
      .min(1, 'must not be empty')
      .default('ferry.event')
      .describe('Name of the signal; its one argument is the CloudEvent.'),
    namespace: z
      .string()
      .min(1, 'must not be empty')
      .optional()
      .describe("Temporal namespace of that workflow. Default: the worker's namespace."),
  })
  .strict()
  .describe('A signal to a Temporal workflow on the same Temporal server as Ferry, carrying the CloudEvent.');

const TARGET_TYPES = ['webhook', 'slack', 'github-deployment', 'temporal'] as const;

export const NotifyTargetSchema = z
  .discriminatedUnion(
    'type',
    [WebhookTargetSchema, SlackTargetSchema, GitHubDeploymentTargetSchema, TemporalTargetSchema],
    {
      error: (issue) =>
        issue.code === 'invalid_union' && issue.note === 'No matching discriminator'
          ? `type must be one of ${TARGET_TYPES.map((t) => `"${t}"`).join(', ')}`
          : undefined,
    },
  )
  .describe('Where the events go. `type` is one of `webhook`, `slack`, `github-deployment`, `temporal`.');

const eventFilter = z
  .string()
  .refine(
    (pattern) => EVENT_TYPES.some((type) => eventTypeMatches(type, pattern)),
    `must be an event type (${EVENT_TYPES.join(', ')}) or a pattern with "*" that matches one`,
  );

export const NotifyRetrySchema = z
  .object({
    deadline: duration
      .default('24h')
      .describe('How long Ferry keeps retrying one delivery before it gives up (the delivery workflow then fails).'),
    initialInterval: duration.default('1s').describe('Wait before the first retry; each later wait doubles.'),
    maximumInterval: duration.default('5m').describe('Longest wait between two attempts.'),
  })
  .strict()
  .describe('How a failed delivery is retried. A receiver that answers 429 or 503 with `Retry-After` is waited for.');

export const SubscriberSchema = z
  .object({
    name: dnsLabel.describe("Name of the subscriber, unique in the pipeline; part of each delivery's workflow id."),
    target: NotifyTargetSchema,
    secret: credentialName
      .optional()
      .describe(
        'Name of the credential for the target, resolved on the worker: the HMAC key (`webhook`), the incoming ' +
          'webhook URL (`slack`), the API token (`github-deployment`). Required for those three; `temporal` needs none.',
      ),
    events: z
      .array(eventFilter)
      .optional()
      .describe(
        'Which events the subscriber receives: event types or patterns with `*` (e.g. `dev.ferry.promotion.*`). ' +
          'Default: all.',
      ),
    retry: NotifyRetrySchema.optional(),
  })
  .strict()
  .superRefine((subscriber, ctx) => {
    if (subscriber.target.type !== 'temporal' && subscriber.secret === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['secret'],
        message: `a ${subscriber.target.type} subscriber needs a secret: the name of its credential on the worker`,
      });
    }
  })
  .describe("One receiver of the pipeline's events.");

export const NotifySchema = z
  .array(SubscriberSchema)
  .describe(
    'Who hears about what happens in the pipeline: every state change (freight registered, promotion started, ' +
      'approval requested, approved, rejected, succeeded, failed, aborted) is a CloudEvents 1.0 event, delivered ' +
      'to each subscriber whose `events` filter matches, in its own workflow, with retries; a delivery never ' +
      'slows or fails a promotion.',
  );

export const GITHUB_TRIGGER_EVENTS = ['push', 'package', 'registry_package', 'pull_request'] as const;
export const GITLAB_TRIGGER_EVENTS = ['push', 'merge_request'] as const;
export const GITEA_TRIGGER_EVENTS = ['push', 'pull_request'] as const;

const webhookSecret = credentialName.describe(
  'Name of the credential holding the webhook secret, resolved by the HTTP API (see docs/integrations.md): ' +
    '`FERRY_WEBHOOK_SECRETS_DIR/<name>`, or `FERRY_SECRET_<NAME>_TOKEN` when the operator lists the name in ' +
    '`FERRY_WEBHOOK_SECRETS`. Never the secret itself.',
);

export const GitHubTriggerSchema = z
  .object({
    repository: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'must be a GitHub repository as owner/name, e.g. org/app')
      .describe(
        "The repository whose webhook deliveries concern this pipeline, as `owner/name` (the payload's " +
          '`repository.full_name`, compared without regard to case).',
      ),
    secret: webhookSecret,
    events: z
      .array(z.enum(GITHUB_TRIGGER_EVENTS, { error: `must be one of ${GITHUB_TRIGGER_EVENTS.join(', ')}` }))
      .min(1, 'must list at least one event')
      .default([...GITHUB_TRIGGER_EVENTS])
      .describe(
        'Events acted on (default all): `push` registers freight for the `git` artifacts of that repository and ' +
          'branch; `package`/`registry_package` (a container image published) for the `image` artifact it matches; ' +
          '`pull_request` (closed and merged) wakes the promotion waiting on that pull request.',
      ),
  })
  .strict()
  .describe('GitHub webhook deliveries (`POST /webhooks/github`) from one repository, verified with its secret.');

export const GitLabTriggerSchema = z
  .object({
    project: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/, 'must be a GitLab project path, e.g. group/app')
      .describe(
        "The project whose webhook deliveries concern this pipeline (the payload's `project.path_with_namespace`).",
      ),
    secret: webhookSecret,
    events: z
      .array(z.enum(GITLAB_TRIGGER_EVENTS, { error: `must be one of ${GITLAB_TRIGGER_EVENTS.join(', ')}` }))
      .min(1, 'must list at least one event')
      .default([...GITLAB_TRIGGER_EVENTS])
      .describe(
        'Events acted on (default all): `push` (Push Hook) registers freight for the `git` artifacts of that ' +
          'project and branch; `merge_request` (Merge Request Hook, action merge) wakes the promotion waiting on it.',
      ),
  })
  .strict()
  .describe('GitLab webhook deliveries (`POST /webhooks/gitlab`) from one project, verified with its secret token.');

export const GiteaTriggerSchema = z
  .object({
    repository: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'must be a Gitea repository as owner/name, e.g. org/app')
      .describe(
        "The repository whose webhook deliveries concern this pipeline, as `owner/name` (the payload's " +
          '`repository.full_name`, compared without regard to case).',
      ),
    secret: webhookSecret,
    events: z
      .array(z.enum(GITEA_TRIGGER_EVENTS, { error: `must be one of ${GITEA_TRIGGER_EVENTS.join(', ')}` }))
      .min(1, 'must list at least one event')
      .default([...GITEA_TRIGGER_EVENTS])
      .describe(
        'Events acted on (default all): `push` registers freight for the `git` artifacts of that repository and ' +
          'branch; `pull_request` (closed and merged) wakes the promotion waiting on that pull request.',
      ),
  })
  .strict()
  .describe(
    'Gitea (or Forgejo) webhook deliveries (`POST /webhooks/gitea`) from one repository, verified with its secret ' +
      '(`X-Gitea-Signature`).',
  );

export const TriggersSchema = z
  .object({
    generic: z
      .object({ secret: webhookSecret })
      .strict()
      .optional()
      .describe(
        'Accept `POST /webhooks/generic/<pipeline>` deliveries signed with HMAC-SHA256 under this secret: any CI ' +
          'registers freight with `{"artifacts": {...}}`.',
      ),
    github: z
      .array(GitHubTriggerSchema)
      .optional()
      .describe('GitHub repositories whose deliveries concern this pipeline.'),
    gitlab: z.array(GitLabTriggerSchema).optional().describe('GitLab projects whose deliveries concern this pipeline.'),
    gitea: z
      .array(GiteaTriggerSchema)
      .optional()
      .describe('Gitea (or Forgejo) repositories whose deliveries concern this pipeline.'),
  })
  .strict()
  .describe(
    'Webhooks that register freight or wake promotions. Without them, freight comes only through the API and CLI.',
  );

export const PipelineSchema = z
  .object({
    apiVersion: z
      .literal(API_VERSION, { error: `must be "${API_VERSION}"` })
      .describe('Version of the pipeline file format.'),
    kind: z.literal('Pipeline', { error: 'must be "Pipeline"' }).describe('Always `Pipeline`.'),
    metadata: z
      .object({
        name: dnsLabel.describe(
          'Name of the pipeline, unique per Ferry installation; applying a file with the same name replaces it.',
        ),
      })
      .strict()
      .describe('Identifies the pipeline.'),
    spec: z
      .object({
        repo: RepoSchema,
        artifacts: z
          .array(ArtifactSchema)
          .min(1, 'must list at least one artifact')
          .describe('What a release of this pipeline is made of. Freight gives one version of each.'),
        stages: z
          .array(StageSchema)
          .min(1, 'must list at least one stage')
          .describe('The environments, in any order; `after` gives the order in which freight travels through them.'),
        notify: NotifySchema.optional(),
        triggers: TriggersSchema.optional(),
      })
      .strict()
      .describe('What the pipeline promotes, where, and in which order.'),
  })
  .strict()
  .describe('A Ferry pipeline: a named graph of stages over one GitOps repository.');

/** A pipeline after validation and defaults: what workflows receive. */
export type Pipeline = z.output<typeof PipelineSchema>;
export type PipelineInput = z.input<typeof PipelineSchema>;
export type Stage = Pipeline['spec']['stages'][number];
export type Repo = Pipeline['spec']['repo'];
export type Artifact = Pipeline['spec']['artifacts'][number];
export type RenderSpec = Stage['render'];
export type SetValueSpec = NonNullable<RenderSpec['set']>[number];
export type HelmSpec = NonNullable<RenderSpec['helm']>;
export type PullRequestSpec = NonNullable<RenderSpec['pullRequest']>;
export type PullRequestProviderName = PullRequestSpec['provider'];
export type ArgoCdSpec = NonNullable<Stage['argocd']>;
export type ApprovalSpec = NonNullable<Stage['approval']>;
export type Subscriber = NonNullable<Pipeline['spec']['notify']>[number];
export type NotifyTarget = Subscriber['target'];
export type GitArtifactSpec = NonNullable<Artifact['git']>;
export type Triggers = NonNullable<Pipeline['spec']['triggers']>;
export type GitHubTrigger = NonNullable<Triggers['github']>[number];
export type GitLabTrigger = NonNullable<Triggers['gitlab']>[number];
export type GiteaTrigger = NonNullable<Triggers['gitea']>[number];
export type GateSpec = NonNullable<Stage['gates']>[number];
export type HttpGateSpec = NonNullable<GateSpec['http']>;
