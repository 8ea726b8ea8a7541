// Ferry's kustomize and helm renders against the binary run alone. Ferry's side is the engine the git step calls
// (renderForStage over the stage's source files, as renderAndPush hands them over): it copies the sources into a
// private render directory with the repository's layout, runs the binary there with the freight's versions, and
// reads its output. The floor runs the same binary with the same arguments in a checkout that is already on disk:
// `kustomize edit set image <image>=*:<tag>` then `kustomize build <overlay>`; `helm template <release> <chart>
// --set-string image.tag=<tag>`. Alternated, one of each in turn.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createHelmEngine } from '../activities/render/helm';
import { createKustomizeEngine } from '../activities/render/kustomize';
import { renderForStage, type RenderEngine, type SourceFile, type SourceReader } from '../activities/render/engine';
import { EXAMPLE_IMAGE } from '../dev/example';
import { RenderSchema, type Artifact } from '../pipeline/schema';
import { exec, time, type Comparison } from './stack';

const ARTIFACTS: Artifact[] = [{ name: 'guestbook', image: EXAMPLE_IMAGE }];
const OVERLAY = 'apps/guestbook/overlays/prod';
const CHART = 'charts/guestbook';

function deployment(name: string): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
  labels: {app: ${name}}
spec:
  replicas: 2
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels: {app: ${name}}
    spec:
      containers:
        - name: web
          image: ${EXAMPLE_IMAGE}:0.0.0
          ports: [{containerPort: 8080}]
          resources: {requests: {cpu: 100m, memory: 128Mi}}
`;
}

/** A base of 6 workloads and their services, an overlay that patches replicas, sets a namespace and pins a tag. */
function kustomizeSources(): Record<string, string> {
  const names = ['web', 'api', 'worker', 'cron', 'admin', 'metrics'];
  const files: Record<string, string> = {
    'apps/guestbook/base/kustomization.yaml': `resources:\n${names.flatMap((n) => [`  - ${n}.yaml`, `  - ${n}-service.yaml`]).join('\n')}\n`,
    [`${OVERLAY}/kustomization.yaml`]:
      'namespace: guestbook-prod\nresources:\n  - ../../base\npatches:\n  - path: replicas.yaml\n' +
      `images:\n  - name: ${EXAMPLE_IMAGE}\n    newTag: 0.0.0\n`,
    [`${OVERLAY}/replicas.yaml`]: 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n',
  };
  for (const n of names) {
    files[`apps/guestbook/base/${n}.yaml`] = deployment(n);
    files[`apps/guestbook/base/${n}-service.yaml`] =
      `apiVersion: v1\nkind: Service\nmetadata: {name: ${n}}\nspec:\n  selector: {app: ${n}}\n  ports: [{port: 80, targetPort: 8080}]\n`;
  }
  return files;
}

/** A chart with a deployment, a service, a config map and helpers, as `helm create` makes them (trimmed). */
function helmSources(): Record<string, string> {
  return {
    [`${CHART}/Chart.yaml`]: 'apiVersion: v2\nname: guestbook\nversion: 0.1.0\nappVersion: "0.0.0"\n',
    [`${CHART}/values.yaml`]:
      `replicaCount: 2\nimage:\n  repository: ${EXAMPLE_IMAGE}\n  tag: "0.0.0"\nservice:\n  port: 80\n` +
      'config:\n  greeting: hello\n  colour: blue\n',
    [`${CHART}/templates/_helpers.tpl`]:
      '{{- define "guestbook.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end }}\n' +
      '{{- define "guestbook.labels" -}}\napp.kubernetes.io/name: {{ include "guestbook.name" . }}\n' +
      'app.kubernetes.io/version: {{ .Values.image.tag | quote }}\n{{- end }}\n',
    [`${CHART}/templates/deployment.yaml`]:
      'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include "guestbook.name" . }}\n  labels:\n' +
      '    {{- include "guestbook.labels" . | nindent 4 }}\nspec:\n  replicas: {{ .Values.replicaCount }}\n' +
      '  template:\n    spec:\n      containers:\n        - name: web\n' +
      '          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"\n' +
      '          envFrom: [{configMapRef: {name: {{ include "guestbook.name" . }}}}]\n',
    [`${CHART}/templates/service.yaml`]:
      'apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ include "guestbook.name" . }}\nspec:\n' +
      '  ports: [{port: {{ .Values.service.port }}, targetPort: 8080}]\n',
    [`${CHART}/templates/configmap.yaml`]:
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include "guestbook.name" . }}\ndata:\n' +
      '{{- range $k, $v := .Values.config }}\n  {{ $k }}: {{ $v | quote }}\n{{- end }}\n',
  };
}

/** The engine's view of the sources: `from`'s files, and a reader for the other directories of the commit. */
function sourcesFor(all: Record<string, string>, from: string): { files: SourceFile[]; source: SourceReader } {
  const under = (dir: string): SourceFile[] =>
    Object.entries(all)
      .filter(([path]) => dir === '' || path.startsWith(`${dir}/`))
      .map(([path, content]) => ({
        path: dir === '' ? path : path.slice(dir.length + 1),
        content: Buffer.from(content),
      }));
  const source: SourceReader = {
    list: (dir) => {
      if (all[dir] !== undefined) return Promise.resolve('not-a-directory');
      const files = under(dir);
      return Promise.resolve(files.length > 0 ? files : 'missing');
    },
  };
  return { files: under(from), source };
}

function writeCheckout(root: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
}

export interface RenderBinaries {
  kustomize: string;
  helm: string;
}

/**
 * Runs `runs` renders of each engine (after one untimed), alternating Ferry and the binary alone, and pushes one
 * comparison per engine. A render whose output differs from the binary's own fails the run: the two sides must
 * do the same work.
 */
export async function renderComparisons(
  binaries: RenderBinaries,
  runs: number,
  comparisons: Comparison[],
  failures: string[],
  nextVersion: () => string,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-render-'));
  const env = { PATH: '', HOME: join(dir, 'home'), TMPDIR: dir };
  try {
    const cases: {
      name: string;
      engine: RenderEngine;
      files: Record<string, string>;
      from: string;
      render: Record<string, unknown>;
      floorName: string;
      floor(checkout: string, tag: string): Promise<string>;
    }[] = [
      {
        name: 'kustomize render',
        engine: createKustomizeEngine(binaries.kustomize),
        files: kustomizeSources(),
        from: OVERLAY,
        render: { strategy: 'branch', engine: 'kustomize', from: OVERLAY, to: 'env/prod' },
        floorName: 'kustomize edit set image + build',
        floor: async (checkout, tag) => {
          await exec(
            binaries.kustomize,
            ['edit', 'set', 'image', `${EXAMPLE_IMAGE}=*:${tag}`],
            env,
            60_000,
            join(checkout, OVERLAY),
          );
          return exec(binaries.kustomize, ['build', OVERLAY], env, 60_000, checkout);
        },
      },
      {
        name: 'helm render',
        engine: createHelmEngine(binaries.helm),
        files: helmSources(),
        from: CHART,
        render: {
          strategy: 'branch',
          engine: 'helm',
          from: CHART,
          to: 'env/prod',
          set: [{ key: 'image.tag', artifact: 'guestbook' }],
        },
        floorName: 'helm template',
        floor: (checkout, tag) =>
          exec(
            binaries.helm,
            ['template', 'bench', `./${CHART}`, '--set-string', `image.tag=${tag}`],
            env,
            60_000,
            checkout,
          ),
      },
    ];
    for (const c of cases) {
      const row: Comparison = {
        name: c.name,
        ferry: [],
        floor: [],
        floorName: c.floorName,
        goal: 'no goal set: the ratio is the measure',
        notes: [],
      };
      comparisons.push(row);
      const checkout = join(dir, c.name.replace(/\W+/g, '-'));
      writeCheckout(checkout, c.files);
      const { files, source } = sourcesFor(c.files, c.from);
      const render = RenderSchema.parse(c.render);
      for (let i = 0; i <= runs; i++) {
        const tag = nextVersion();
        let ferryOut = '';
        const ferryMs = await time(async () => {
          const out = await renderForStage(
            c.engine,
            {
              pipeline: 'bench',
              from: c.from,
              files,
              source,
              render,
              artifacts: ARTIFACTS,
              versions: { guestbook: tag },
            },
            { stage: 'prod', doing: 'rendering', where: 'the bench sources' },
          );
          ferryOut = out[0]!.content.toString('utf8');
        });
        let floorOut = '';
        const floorMs = await time(async () => {
          floorOut = await c.floor(checkout, tag);
        });
        if (ferryOut !== floorOut) {
          failures.push(`${c.name}: Ferry's output differs from the binary's for tag ${tag}`);
          row.notes.push(`run ${i}: outputs differ (${ferryOut.length} vs ${floorOut.length} bytes)`);
        }
        if (!ferryOut.includes(`${EXAMPLE_IMAGE}:${tag}`)) failures.push(`${c.name}: tag ${tag} not in the output`);
        if (i === 0) continue; // the first run of each: binaries into the page cache
        row.ferry.push(ferryMs);
        row.floor.push(floorMs);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
