// The example GitOps repository and pipeline that `npm start` sets up (once) and the tests reuse: a guestbook app
// with one overlay per stage, in a bare repository on disk that plays the git remote.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseDocument, type YAMLMap, type YAMLSeq } from 'yaml';

export const EXAMPLE_IMAGE = 'registry.example.com/team/guestbook';
export const EXAMPLE_STAGES = ['dev', 'staging', 'prod'] as const;

function deployment(stage: string, replicas: number): string {
  return `# Guestbook frontend for ${stage}. Ferry sets the image tag; everything else is yours.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: guestbook
  labels:
    app: guestbook
spec:
  replicas: ${replicas} # ${stage} sizing
  selector:
    matchLabels:
      app: guestbook
  template:
    metadata:
      labels:
        app: guestbook
    spec:
      containers:
        - name: guestbook
          image: ${EXAMPLE_IMAGE}:0.0.0 # replaced on promotion
          ports:
            - containerPort: 8080
          env:
            - name: STAGE
              value: "${stage}"
---
apiVersion: v1
kind: Service
metadata:
  name: guestbook
spec:
  selector:
    app: guestbook
  ports:
    - port: 80
      targetPort: 8080
`;
}

/** Files of the example repository's main branch, by path. */
export function exampleSources(): Record<string, string> {
  const files: Record<string, string> = {
    'README.md':
      '# gitops\n\nDry manifests live on `main` under `apps/`; Ferry renders each stage into `env/<stage>`.\n',
  };
  EXAMPLE_STAGES.forEach((stage, i) => {
    files[`apps/guestbook/overlays/${stage}/deployment.yaml`] = deployment(stage, i + 1);
  });
  return files;
}

export interface ExampleRepo {
  /** The bare repository (the "remote"). */
  path: string;
  url: string;
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'Example',
      GIT_AUTHOR_EMAIL: 'example@ferry.dev',
      GIT_COMMITTER_NAME: 'Example',
      GIT_COMMITTER_EMAIL: 'example@ferry.dev',
    },
  }).trim();
}

/** Creates a bare repository at `path` whose `main` holds `files` (default: the example app). Idempotent. */
export function createExampleRepo(path: string, files: Record<string, string> = exampleSources()): ExampleRepo {
  const url = pathToFileURL(path).href;
  if (existsSync(join(path, 'HEAD'))) return { path, url };
  mkdirSync(dirname(path), { recursive: true });
  git(dirname(path), 'init', '--quiet', '--bare', '--initial-branch=main', path);
  const work = mkdtempSync(join(tmpdir(), 'ferry-example-'));
  try {
    git(work, 'init', '--quiet', '--initial-branch=main');
    for (const [file, content] of Object.entries(files)) {
      mkdirSync(dirname(join(work, file)), { recursive: true });
      writeFileSync(join(work, file), content);
    }
    git(work, 'add', '-A');
    git(work, 'commit', '--quiet', '-m', 'Example app: guestbook with dev, staging and prod overlays');
    git(work, 'push', '--quiet', url, 'main:main');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { path, url };
}

/** The documented example pipeline; `npm start` and the tests use it over a local repository. */
export const EXAMPLE_PIPELINE_FILE = join(__dirname, '..', 'examples', 'guestbook', 'pipeline.yaml');

/**
 * The example three-stage pipeline (dev auto, staging manual, prod with approval) from
 * examples/guestbook/pipeline.yaml, pointed at `repoUrl` (a local repository needs no credential) and with the
 * given approvers. Comments are kept, so the file `npm start` writes still explains itself.
 */
export function examplePipelineYaml(repoUrl: string, approvers: string[]): string {
  // The file's header points at the schema by a relative path that would not hold where the copy is written.
  const body = readFileSync(EXAMPLE_PIPELINE_FILE, 'utf8').replace(/^(#.*\n)+\n?/, '');
  const doc = parseDocument(body);
  const schema = join(__dirname, '..', 'docs', 'reference', 'pipeline.schema.json');
  doc.commentBefore = [
    ` yaml-language-server: $schema=${schema}`,
    '',
    ' The example pipeline that `npm start` applies. Edit it and re-apply with: npx ferry apply -f <this file>',
  ].join('\n');
  doc.setIn(['spec', 'repo', 'url'], repoUrl);
  doc.deleteIn(['spec', 'repo', 'credentials']);
  const prod = (doc.get('spec') as YAMLMap).getIn(['stages', 2]) as YAMLMap;
  const list = doc.createNode(approvers) as YAMLSeq;
  list.flow = true;
  prod.setIn(['approval', 'approvers'], list);
  return doc.toString();
}
