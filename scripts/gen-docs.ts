// Generates the pipeline reference from the schema: docs/reference/pipeline.schema.json (for editors) and
// docs/reference/pipeline.md (for people), and the API description docs/openapi.json from api/openapi.ts. `npm run
// docs` writes them; `npm run docs -- --check` fails when the committed files are stale. test/unit/docs.test.ts and
// test/unit/openapi.test.ts run the same comparison, so the docs cannot drift.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { openApiDocument } from '../api/openapi';
import { PIPELINE_RULES, PipelineSchema, formatSpecErrors, parsePipelineText, pipelineJsonSchema } from '../pipeline';

export const REFERENCE_DIR = resolve(__dirname, '..', 'docs', 'reference');
/** The published API description (the API serves the same document at GET /api/v1/openapi.json). */
export const OPENAPI_FILE = resolve(__dirname, '..', 'docs', 'openapi.json');

/** Uses every field of the schema; generation fails if a field is added to the schema and not shown here. */
export const FULL_EXAMPLE = `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata:
  name: guestbook
spec:
  repo:
    url: https://git.example.com/org/gitops.git
    branch: main
    credentials: gitops
  artifacts:
    - name: guestbook
      image: registry.example.com/team/guestbook
    - name: guestbook-worker
      image: registry.example.com/team/guestbook-worker
    - name: sources
      git:
        url: https://git.example.com/org/gitops.git
        branch: main
  triggers:
    generic:
      secret: ci-webhook
    github:
      - repository: org/guestbook
        secret: github-webhook
        events: [registry_package, push]
    gitlab:
      - project: org/gitops
        secret: gitlab-webhook
        events: [push, merge_request]
    gitea:
      - repository: org/gitops
        secret: gitea-webhook
        events: [push, pull_request]
  stages:
    - name: dev
      promotion: auto
      render:
        strategy: branch
        engine: kustomize
        from: apps/guestbook/overlays/dev
        to: env/dev
        output: manifests.yaml
      argocd:
        server: https://argocd.example.com
        app: guestbook-dev
        credentials: argocd
    - name: staging
      after: [dev]
      promotion: auto
      render:
        strategy: branch
        engine: helm
        from: charts/guestbook
        to: env/staging
        helm:
          releaseName: guestbook
          namespace: guestbook-staging
          valuesFiles: [values.yaml, values-staging.yaml]
          kubeVersion: 1.31.0
          apiVersions: [monitoring.coreos.com/v1]
          includeCRDs: false
        set:
          - key: image.tag
            artifact: guestbook
            value: tag
          - key: worker.image
            artifact: guestbook-worker
            value: reference
            file: values-staging.yaml
      argocd:
        server: https://argocd.example.com
        app: guestbook-staging
        project: guestbook
        credentials: argocd
        timeout: 5m
    - name: qa
      after: [staging]
      render:
        strategy: directory
        to: envs/qa
        set:
          - file: values.yaml
            key: image.tag
            artifact: guestbook
            value: tag
    - name: prod
      after: [staging]
      promotion: manual
      approval:
        required: 2
        approvers: [alice, bob, carol]
        allowSelfApproval: false
      render:
        strategy: pull-request
        engine: plain
        from: apps/guestbook/overlays/prod
        to: env/prod
        pullRequest:
          target: branch
          provider: github
          api: https://api.github.com
          credentials: github-prs
          pollInterval: 1m
          timeout: 72h
          approvalOnHost: false
          labels: [release]
      argocd:
        server: https://argocd.prod.example.com
        app: guestbook-prod
        project: guestbook
        appNamespace: team-guestbook
        credentials: argocd-prod
        timeout: 20m
        degradedGrace: 1m
        unhealthyGrace: 2m
      gates:
        - name: e2e
          callback:
            timeout: 30m
        - name: smoke
          http:
            url: https://guestbook.example.com/api/health
            method: GET
            credentials: guestbook-probe
            expect:
              status: 200
              jsonPath: $.status
              equals: ok
            interval: 10s
            successes: 3
            timeout: 5m
  notify:
    - name: release-bot
      target:
        type: webhook
        url: https://hooks.example.com/ferry
      secret: release-bot-hmac
      events: [dev.ferry.promotion.*, dev.ferry.approval.requested]
      retry:
        deadline: 6h
        initialInterval: 2s
        maximumInterval: 10m
    - name: team-chat
      target: { type: slack }
      secret: slack-guestbook-webhook
      events: ['*.failed', dev.ferry.approval.requested, dev.ferry.promotion.succeeded]
    - name: environments
      target:
        type: github-deployment
        repository: example-org/guestbook
        apiUrl: https://api.github.com
        productionEnvironments: [prod]
      secret: github-deployments
    - name: release-train
      target:
        type: temporal
        workflowId: release-train-2026-11
        signal: ferry.event
        namespace: default
      events: [dev.ferry.promotion.succeeded, dev.ferry.promotion.failed]
`;

// ---------------------------------------------------------------------------------------------------------------
// Reading the JSON Schema

interface JsonSchema {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  /** A choice of objects told apart by a `type` constant (the notify targets). */
  oneOf?: JsonSchema[];
}

interface Field {
  path: string;
  schema: JsonSchema;
  required: boolean;
}

interface Section {
  /** `spec.stages[]`, or `` for the document itself. */
  path: string;
  description?: string;
  /** For one object of a choice (`oneOf`): the value of its `type` field. */
  variant?: string;
  fields: Field[];
}

const isObject = (s: JsonSchema | undefined): boolean => s?.type === 'object' && s.properties !== undefined;
const isChoice = (s: JsonSchema | undefined): boolean =>
  (s?.oneOf ?? []).length > 0 && (s?.oneOf ?? []).every(isObject);
const variantOf = (s: JsonSchema): string => String(s.properties?.type?.const ?? '');

function collectSections(schema: JsonSchema, path: string, sections: Section[], variant?: string): void {
  const section: Section = { path, description: schema.description, fields: [], ...(variant ? { variant } : {}) };
  sections.push(section);
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const fieldPath = path === '' ? name : `${path}.${name}`;
    section.fields.push({ path: fieldPath, schema: property, required: (schema.required ?? []).includes(name) });
  }
  for (const field of section.fields) {
    if (isObject(field.schema)) collectSections(field.schema, field.path, sections);
    else if (isChoice(field.schema)) {
      for (const choice of field.schema.oneOf ?? []) collectSections(choice, field.path, sections, variantOf(choice));
    } else if (field.schema.type === 'array' && isObject(field.schema.items)) {
      collectSections(
        { ...(field.schema.items as JsonSchema), description: field.schema.items?.description },
        `${field.path}[]`,
        sections,
      );
    }
  }
}

const code = (text: string): string => `\`${text.replace(/\|/g, '\\|')}\``;
const anchor = (path: string, variant?: string): string =>
  `field-${path.replace(/\[\]/g, '').replace(/[^A-Za-z0-9]+/g, '-')}${variant ? `-${variant.replace(/[^A-Za-z0-9]+/g, '-')}` : ''}`;
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const yamlValue = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));

function typeOf(field: Field): string {
  const s = field.schema;
  if (isObject(s)) return `object ([below](#${anchor(field.path)}))`;
  if (isChoice(s)) {
    const choices = (s.oneOf ?? []).map((c) => `[${variantOf(c)}](#${anchor(field.path, variantOf(c))})`);
    return `object, by \`type\`: ${choices.join(', ')}`;
  }
  if (s.type === 'array') {
    if (isObject(s.items)) return `list of objects ([below](#${anchor(`${field.path}[]`)}))`;
    return `list of ${s.items?.type ?? 'values'}s`;
  }
  return s.type === 'integer' ? 'integer' : (s.type ?? 'any');
}

function constraints(s: JsonSchema): string[] {
  const out: string[] = [];
  if (s.const !== undefined) out.push(`only ${code(yamlValue(s.const))}`);
  if (s.enum) out.push(`one of ${s.enum.map((v) => code(yamlValue(v))).join(', ')}`);
  if (s.minimum !== undefined) out.push(`at least ${s.minimum}`);
  if (s.maximum !== undefined && s.maximum < Number.MAX_SAFE_INTEGER) out.push(`at most ${s.maximum}`);
  if (s.minLength !== undefined && s.minLength > 1) out.push(`at least ${s.minLength} characters`);
  if (s.minLength === 1) out.push('not empty');
  if (s.maxLength !== undefined) out.push(`at most ${s.maxLength} characters`);
  if (s.minItems !== undefined) out.push(`at least ${s.minItems} item${s.minItems === 1 ? '' : 's'}`);
  if (s.maxItems !== undefined) out.push(`at most ${s.maxItems} items`);
  if (s.pattern !== undefined) out.push(`pattern ${code(s.pattern)}`);
  return out;
}

function allowed(field: Field): string {
  const s = field.schema;
  const own = constraints(s);
  const items = s.type === 'array' && s.items && !isObject(s.items) ? constraints(s.items).map((c) => `each ${c}`) : [];
  return [...own, ...items].join('; ') || '—';
}

function requirement(field: Field): string {
  if (field.required) return 'required';
  if (field.schema.default !== undefined) return `optional, default ${code(yamlValue(field.schema.default))}`;
  return 'optional';
}

// ---------------------------------------------------------------------------------------------------------------
// The example must show every field, and must be valid

function presentPaths(value: unknown, path: string, out: Set<string>): void {
  if (Array.isArray(value)) {
    for (const item of value) presentPaths(item, `${path}[]`, out);
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const child = path === '' ? key : `${path}.${key}`;
      out.add(child);
      presentPaths(item, child, out);
    }
  }
}

function checkExample(sections: Section[]): void {
  const result = parsePipelineText(FULL_EXAMPLE, { source: 'FULL_EXAMPLE' });
  if (!result.ok) throw new Error(`the reference example is invalid:\n${formatSpecErrors(result.errors)}`);
  const present = new Set<string>();
  presentPaths(parse(FULL_EXAMPLE), '', present);
  const missing = sections.flatMap((s) => s.fields.map((f) => f.path)).filter((p) => !present.has(p));
  if (missing.length > 0) throw new Error(`the reference example does not show: ${missing.join(', ')}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering

function renderMarkdown(sections: Section[]): string {
  const lines: string[] = [
    '<!-- Generated by scripts/gen-docs.ts from pipeline/schema.ts. Do not edit by hand: run `npm run docs`. -->',
    '',
    '# Pipeline file reference',
    '',
    `${PipelineSchema.description ?? ''}`,
    '',
    'A pipeline file is YAML (or JSON) holding one document. Apply it with `ferry apply -f pipeline.yaml` or',
    '`PUT /api/v1/pipelines/{name}`. Ferry checks the whole file before anything starts and reports every mistake',
    'at once, each with the path of the field, for example:',
    '',
    '```text',
    'spec.stages[1].render.to: Required',
    'spec.stages[0].aprovals: unknown field',
    'spec.stages[2].after[0]: unknown stage "stagin"; the stages are "dev", "staging", "prod"',
    '```',
    '',
    'Unknown fields are errors, so a misspelt field never silently falls back to its default.',
    '',
    '## Editor support',
    '',
    'The JSON Schema of this file is [pipeline.schema.json](pipeline.schema.json) (draft 2020-12). With the',
    'YAML extension for VS Code (or any editor using yaml-language-server), this first line gives completion,',
    'hover help and checks as you type:',
    '',
    '```yaml',
    '# yaml-language-server: $schema=<path or URL of pipeline.schema.json>',
    '```',
    '',
    'The schema covers the shape of the file; the [rules across fields](#rules-across-fields) are checked by Ferry.',
    '',
    '## Example',
    '',
    'Every field, in use:',
    '',
    '```yaml',
    FULL_EXAMPLE.trimEnd(),
    '```',
    '',
    '## Fields',
    '',
  ];
  for (const section of sections) {
    if (section.variant) {
      lines.push(
        `<a id="${anchor(section.path, section.variant)}"></a>`,
        '',
        `### \`${section.path}\` with \`type: ${section.variant}\``,
        '',
      );
    } else if (section.path !== '') {
      lines.push(`<a id="${anchor(section.path)}"></a>`, '', `### \`${section.path}\``, '');
    } else {
      lines.push('### Top level', '');
    }
    if (section.description && section.path !== '') lines.push(section.description, '');
    lines.push('| Field | Type | Required | Allowed values | Description |', '| --- | --- | --- | --- | --- |');
    for (const field of section.fields) {
      lines.push(
        `| ${code(field.path)} | ${typeOf(field)} | ${requirement(field)} | ${allowed(field)} | ${cell(field.schema.description ?? '')} |`,
      );
    }
    lines.push('');
  }
  lines.push(
    '## Rules across fields',
    '',
    'Checked when a pipeline is applied, together with the fields above:',
    '',
    ...PIPELINE_RULES.map((rule) => `- ${rule}`),
    '',
  );
  return lines.join('\n');
}

/** The reference files, by name, exactly as they should be committed. */
export function generateDocs(): Record<'pipeline.schema.json' | 'pipeline.md', string> {
  const schema = pipelineJsonSchema();
  const sections: Section[] = [];
  collectSections(schema as JsonSchema, '', sections);
  checkExample(sections);
  return {
    'pipeline.schema.json': `${JSON.stringify(schema, null, 2)}\n`,
    'pipeline.md': renderMarkdown(sections),
  };
}

/** docs/openapi.json exactly as it should be committed. */
export function generateOpenApi(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}

function main(): void {
  const check = process.argv.includes('--check');
  const files: Array<[string, string]> = [
    ...Object.entries(generateDocs()).map(([name, content]): [string, string] => [join(REFERENCE_DIR, name), content]),
    [OPENAPI_FILE, generateOpenApi()],
  ];
  const stale: string[] = [];
  mkdirSync(REFERENCE_DIR, { recursive: true });
  for (const [path, content] of files) {
    let current: string | undefined;
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === content) continue;
    if (check) stale.push(path);
    else {
      writeFileSync(path, content);
      console.log(`wrote ${path}`);
    }
  }
  if (stale.length > 0) {
    console.error(`out of date (run npm run docs): ${stale.join(', ')}`);
    process.exitCode = 1;
  }
}

if (require.main === module) main();
