// Pipelines the tests share. Each test still writes out what it varies: the stages of a YAML pipeline, the stage and
// URLs of a one-stage Argo CD pipeline.

const REPO_URL = 'https://git.example.com/org/gitops.git';
const IMAGE = 'registry.example.com/team/guestbook';

/**
 * Pipeline YAML for the guestbook app: metadata.name guestbook, the repo https://git.example.com/org/gitops.git
 * (branch left to its default, credentials only when given) and one artifact, guestbook. `stages` is the YAML that
 * follows `  stages:`, starting on a new line: list items indented by four spaces.
 */
export function guestbookYaml(stages: string, repo: { credentials?: string } = {}): string {
  return [
    'apiVersion: ferry.dev/v1alpha1',
    'kind: Pipeline',
    'metadata:',
    '  name: guestbook',
    'spec:',
    '  repo:',
    `    url: ${REPO_URL}`,
    ...(repo.credentials === undefined ? [] : [`    credentials: ${repo.credentials}`]),
    '  artifacts:',
    '    - name: guestbook',
    `      image: ${IMAGE}`,
    `  stages:${stages}`,
  ].join('\n');
}

/**
 * Five mistakes in five places — apiVersion, spec.repo.url, spec.artifacts[0].image, spec.stages[0].render.strategy,
 * spec.stages[1].after[0] — to be reported all at once.
 */
export const FIVE_MISTAKES_YAML = `apiVersion: ferry.dev/v2
kind: Pipeline
metadata:
  name: guestbook
spec:
  repo:
    url: ftp://git.example.com/org/gitops.git
  artifacts:
    - name: guestbook
      image: registry.example.com/team/guestbook:1.0
  stages:
    - name: dev
      render: { strategy: trunk, from: apps/guestbook/overlays/dev, to: env/dev }
    - name: prod
      after: [qa]
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
`;

/**
 * The guestbook pipeline with a single stage, as plain data for validatePipeline: it renders
 * apps/guestbook/overlays/<stage> into env/<stage> and syncs the Argo CD app guestbook-<stage> (project default,
 * credentials "argocd") on `argocdUrl`.
 */
export function oneArgoCdStagePipeline(options: {
  repoUrl: string;
  argocdUrl: string;
  stage: string;
  approval?: { required: number; approvers: string[] };
}) {
  const { repoUrl, argocdUrl, stage, approval } = options;
  return {
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'guestbook' },
    spec: {
      repo: { url: repoUrl },
      artifacts: [{ name: 'guestbook', image: IMAGE }],
      stages: [
        {
          name: stage,
          ...(approval ? { approval } : {}),
          render: { strategy: 'branch', from: `apps/guestbook/overlays/${stage}`, to: `env/${stage}` },
          argocd: { server: argocdUrl, app: `guestbook-${stage}`, project: 'default', credentials: 'argocd' },
        },
      ],
    },
  };
}
