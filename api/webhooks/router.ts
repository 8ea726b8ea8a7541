// Inbound webhooks: `POST /webhooks/generic/{pipeline}` (any CI), `/webhooks/github`, `/webhooks/gitlab` and
// `/webhooks/gitea` (Gitea and Forgejo).
// Mounted before and outside the bearer-token authentication: a delivery proves itself with a signature over its
// raw body (signatures.ts) under a secret the pipeline names (spec.triggers), resolved by the API (secrets.ts).
//
// Order of checks, so that a delivery that fails one has done nothing and learns nothing it did not know:
// size (413) → signature headers (401) → the pipelines that could have signed it and their secrets → signature
// (401) → timestamp window (401) → replay (200 {"duplicate": true}) → shape (400, by path) → action.
// A generic delivery for a pipeline that does not exist or accepts no generic webhook gets the same 401 as a wrong
// signature, so the route does not tell who exists.
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { z } from 'zod';
import { FerryError, type FieldError } from '../../client/errors';
import { logger as defaultLogger, type Logger } from '../../client/log';
import type { FerryApi } from '../../client/types';
import { IMAGE_DIGEST, IMAGE_TAG, validateFreight } from '../../pipeline/freight-rules';
import { specErrorsFromZod } from '../../pipeline/load';
import { sameRepository } from '../../pipeline/repository-url';
import {
  GITEA_TRIGGER_EVENTS,
  type GitHubTrigger,
  type GitLabTrigger,
  type GiteaTrigger,
  type Pipeline,
} from '../../pipeline/schema';
import type { PipelineStatus } from '../../workflows/messages';
import { BodyTooLarge, DEFAULT_MAX_BODY_BYTES, readRawBody, refuseLargeBody } from './body';
import { createDeliveryMemory } from './deliveries';
import {
  GenericDeliveryBody,
  GitHubDelivery,
  GitHubPackageEvent,
  GitHubPullRequestEvent,
  GitHubPush,
  GitLabDelivery,
  GitLabMergeRequest,
  GitLabPush,
  GiteaDelivery,
  GiteaPullRequestEvent,
  GiteaPush,
  type FreightRegistered,
  type HostDeliveryResult,
} from './payloads';
import type { WebhookSecrets } from './secrets';
import {
  gitLabTokenMatches,
  parseGiteaSignature,
  parseSignature,
  parseTimestamp,
  verifyGenericDelivery,
  verifyGitHubDelivery,
  verifyGiteaDelivery,
} from './signatures';

export const DEFAULT_REPLAY_WINDOW_SECONDS = 300;

export interface WebhookRouterOptions {
  ferry: FerryApi;
  secrets: WebhookSecrets;
  logger?: Logger;
  /** Largest body accepted (default 1 MiB); larger ones get 413 without being read. */
  maxBodyBytes?: number;
  /** How far X-Ferry-Timestamp may be from the server's clock, either way (default 300 s). */
  replayWindowSeconds?: number;
  /** Deliveries remembered for the replay check at most (default 10 000). */
  maxRememberedDeliveries?: number;
  /** The clock, milliseconds since the epoch (tests). */
  now?: () => number;
}

type PipelineSpec = Pipeline['spec'];

/** One pipeline a host delivery concerns, with the trigger of it that the delivery's secret verified. */
interface Concerned<T> {
  status: PipelineStatus;
  trigger: T;
}

export function createWebhookRouter(options: WebhookRouterOptions): Router {
  const { ferry, secrets } = options;
  const log = options.logger ?? defaultLogger;
  const now = options.now ?? Date.now;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const windowSeconds = options.replayWindowSeconds ?? DEFAULT_REPLAY_WINDOW_SECONDS;
  // A delivery stamped up to a window ahead of our clock stays acceptable for two windows.
  const deliveries = createDeliveryMemory({
    ttlMs: 2 * windowSeconds * 1000,
    now,
    ...(options.maxRememberedDeliveries !== undefined ? { maxEntries: options.maxRememberedDeliveries } : {}),
  });

  const router = express.Router();
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  /** A secret by name, or undefined (logged for the operator: the name and where the API looked, never a value). */
  const secretFor = (name: string, pipeline: string): string | undefined => {
    const secret = secrets.resolve(name);
    if (secret === undefined) {
      log.warn('webhook secret is not configured on the API; deliveries for the pipeline cannot be verified', {
        pipeline,
        secret: name,
        lookedIn: secrets.describe(name),
      });
    }
    return secret;
  };

  const pipelineOrUndefined = async (name: string): Promise<PipelineStatus | undefined> => {
    try {
      return await ferry.getPipeline(name);
    } catch (err) {
      if (err instanceof FerryError && err.code === 'NotFound') return undefined;
      throw err;
    }
  };

  /** Every pipeline with its trigger for this repository or project (the applied specs, read from Temporal). */
  const pipelinesWith = async <T>(pick: (spec: PipelineSpec) => T | undefined): Promise<Concerned<T>[]> => {
    const summaries = await ferry.listPipelines();
    const statuses = await Promise.all(summaries.map((s) => pipelineOrUndefined(s.name)));
    const found: Concerned<T>[] = [];
    for (const status of statuses) {
      const trigger = status ? pick(status.spec.spec) : undefined;
      if (status && trigger !== undefined) found.push({ status, trigger });
    }
    return found;
  };

  /**
   * Registers freight from the versions a delivery carries; artifacts it leaves out take their version from the
   * pipeline's newest freight. Everything is checked before anything is registered.
   */
  const registerFreight = async (
    status: PipelineStatus,
    versions: Record<string, string>,
  ): Promise<FreightRegistered> => {
    const name = status.name;
    const newest = status.freight[0];
    const merged: Record<string, string> = {};
    for (const artifact of status.spec.spec.artifacts) {
      const taken = newest?.artifacts[artifact.name];
      if (taken !== undefined) merged[artifact.name] = taken;
    }
    Object.assign(merged, versions);
    const errors = validateFreight(status.spec, merged).map((e) =>
      !newest && e.message.startsWith('Required')
        ? { ...e, message: `${e.message} (pipeline "${name}" has no freight yet to take it from)` }
        : e,
    );
    if (errors.length > 0) {
      throw new FerryError('InvalidArgument', `freight does not match the artifacts of pipeline "${name}"`, {
        errors,
      });
    }
    const result = await ferry.addFreight(name, merged);
    log.info('webhook registered freight', { pipeline: name, freight: result.id, created: result.created });
    return { pipeline: name, id: result.id, created: result.created, artifacts: merged };
  };

  // --- generic

  router.post('/generic/:pipeline', async (req, res) => {
    const name = req.params.pipeline as string;
    const body = await readRawBody(req, maxBody);
    const signature = parseSignature(req.get('x-ferry-signature'));
    if (!signature) {
      throw unauthenticated(
        'missing or malformed X-Ferry-Signature: send "sha256=<hex HMAC-SHA256 of <timestamp>.<body>>"',
      );
    }
    const timestampHeader = req.get('x-ferry-timestamp')?.trim();
    const timestamp = parseTimestamp(timestampHeader);
    if (timestampHeader === undefined || timestamp === undefined) {
      throw unauthenticated('missing or malformed X-Ferry-Timestamp: send the time of signing in Unix seconds');
    }
    const notVerified = unauthenticated(
      `X-Ferry-Signature does not verify for pipeline "${name}": sign "<timestamp>.<body>" with the secret its ` +
        'spec.triggers.generic names (a pipeline that does not exist or takes no generic webhook answers the same)',
    );
    const status = await pipelineOrUndefined(name);
    const secretName = status?.spec.spec.triggers?.generic?.secret;
    const secret = status && secretName ? secretFor(secretName, name) : undefined;
    if (!status || secret === undefined || !verifyGenericDelivery(secret, timestampHeader, body, signature)) {
      throw notVerified;
    }
    const skew = Math.round(now() / 1000) - timestamp;
    if (Math.abs(skew) > windowSeconds) {
      throw unauthenticated(
        `X-Ferry-Timestamp is ${Math.abs(skew)} s ${skew > 0 ? 'in the past' : 'in the future'}; deliveries are ` +
          `accepted within ${windowSeconds} s of the server's clock: sign each delivery when sending it, and check the sender's clock`,
      );
    }
    const outcome = await deliveries.once(`generic/${name}/${signature.toString('hex')}`, async () => {
      const delivery = parseJsonBody(body, GenericDeliveryBody);
      return registerFreight(status, delivery.artifacts);
    });
    if (outcome.duplicate) {
      log.info('webhook delivery acknowledged as a duplicate', { source: 'generic', pipeline: name });
      res.status(200).json({ duplicate: true });
      return;
    }
    res.status(outcome.result.created ? 201 : 200).json(outcome.result);
  });

  // --- GitHub

  router.post('/github', async (req, res) => {
    const body = await readRawBody(req, maxBody);
    const signature = parseSignature(req.get('x-hub-signature-256'));
    if (!signature) {
      throw unauthenticated(
        'missing or malformed X-Hub-Signature-256: give the GitHub webhook a secret (Ferry takes no unsigned deliveries)',
      );
    }
    const event = requiredHeader(req, 'X-GitHub-Event');
    const delivery = requiredHeader(req, 'X-GitHub-Delivery');
    const payload = parseJsonBody(body, GitHubDelivery);
    const repository = payload.repository.full_name;

    const watching = await pipelinesWith((spec) =>
      spec.triggers?.github?.find((t) => t.repository.toLowerCase() === repository.toLowerCase()),
    );
    const verified = verifiedBy(watching, (trigger, pipeline) => {
      const secret = secretFor(trigger.secret, pipeline);
      return secret !== undefined && verifyGitHubDelivery(secret, body, signature);
    });
    if (verified.length === 0) {
      throw unauthenticated(
        `X-Hub-Signature-256 does not verify with the secret of any pipeline that watches ${repository} ` +
          "(spec.triggers.github): check the webhook's secret and the repository in the pipeline",
      );
    }

    const outcome = await deliveries.once(`github/${delivery}`, () =>
      actOnGitHub(event, delivery, JSON.parse(body.toString('utf8')) as unknown, verified),
    );
    answerHostDelivery(res, outcome, { source: 'github', event, delivery, repository });
  });

  const actOnGitHub = async (
    event: string,
    delivery: string,
    payload: unknown,
    verified: Concerned<GitHubTrigger>[],
  ): Promise<HostDeliveryResult> => {
    const result: HostDeliveryResult = { event, delivery, pipelines: [] };
    if (event === 'ping') {
      result.pipelines = verified.map(({ status }) => ({ pipeline: status.name, ignored: 'ping: the webhook works' }));
      return result;
    }
    const listening = verified.filter(({ status, trigger }) => {
      const takes = (trigger.events as readonly string[]).includes(event);
      if (!takes) {
        result.pipelines.push({
          pipeline: status.name,
          ignored: `event "${event}" is not among spec.triggers.github events (${trigger.events.join(', ')})`,
        });
      }
      return takes;
    });
    switch (event) {
      case 'push': {
        const push = parseShape(payload, GitHubPush);
        const urls = [
          push.repository.clone_url,
          push.repository.html_url,
          push.repository.git_url,
          push.repository.ssh_url,
        ];
        await pushRegistersFreight(result, listening, {
          ref: push.ref,
          after: push.after,
          deleted: push.deleted === true,
          urls,
          where: push.repository.full_name,
        });
        return result;
      }
      case 'package':
      case 'registry_package': {
        const published = parseShape(payload, GitHubPackageEvent);
        const pkg = published.package ?? published.registry_package;
        if (!pkg)
          throw invalid(`a ${event} delivery without "${event === 'package' ? 'package' : 'registry_package'}"`);
        const type = (pkg.package_type ?? pkg.ecosystem ?? '').toLowerCase();
        const why =
          published.action !== 'published'
            ? `action "${published.action}" is not acted on (only "published")`
            : !['container', 'docker'].includes(type)
              ? `package type "${type}" is not a container image`
              : undefined;
        const image = imageOfPackage(pkg);
        const version = versionOfPackage(pkg);
        for (const { status } of listening) {
          if (why || !version) {
            result.pipelines.push({ pipeline: status.name, ignored: why ?? `no tag or digest for ${image}` });
            continue;
          }
          const artifacts = status.spec.spec.artifacts.filter((a) => a.image && sameImage(a.image, image));
          if (artifacts.length === 0) {
            result.pipelines.push({ pipeline: status.name, ignored: `no artifact has image ${image}` });
            continue;
          }
          await forPipeline(result, status, () =>
            registerFreight(status, Object.fromEntries(artifacts.map((a) => [a.name, version]))),
          );
        }
        return finished(result);
      }
      case 'pull_request': {
        const pr = parseShape(payload, GitHubPullRequestEvent);
        const merged = pr.action === 'closed' && pr.pull_request.merged === true;
        if (!merged || listening.length === 0) {
          for (const { status } of listening) {
            result.pipelines.push({
              pipeline: status.name,
              ignored: `pull request #${pr.number} was ${pr.action}${pr.action === 'closed' ? ' without merging' : ''}`,
            });
          }
          return result;
        }
        const { signalled } = await ferry.pullRequestMerged({
          provider: 'github',
          repository: pr.repository.full_name,
          number: pr.number,
          ...(pr.pull_request.merge_commit_sha ? { mergeCommit: pr.pull_request.merge_commit_sha } : {}),
        });
        for (const { status } of listening) result.pipelines.push({ pipeline: status.name });
        return { ...result, signalled };
      }
      default:
        for (const { status } of listening) {
          result.pipelines.push({ pipeline: status.name, ignored: `event "${event}" is not acted on` });
        }
        return result;
    }
  };

  // --- GitLab

  router.post('/gitlab', async (req, res) => {
    const body = await readRawBody(req, maxBody);
    const token = req.get('x-gitlab-token');
    if (token === undefined || token === '') {
      throw unauthenticated('missing X-Gitlab-Token: give the GitLab webhook a secret token');
    }
    const event = requiredHeader(req, 'X-Gitlab-Event');
    // Newer GitLab sends Idempotency-Key (the same on retries); X-Gitlab-Event-UUID identifies the event.
    const delivery = req.get('idempotency-key') || req.get('x-gitlab-event-uuid') || undefined;
    const payload = parseJsonBody(body, GitLabDelivery);
    const project = payload.project.path_with_namespace;

    const watching = await pipelinesWith((spec) =>
      spec.triggers?.gitlab?.find((t) => t.project.toLowerCase() === project.toLowerCase()),
    );
    const verified = verifiedBy(watching, (trigger, pipeline) => {
      const secret = secretFor(trigger.secret, pipeline);
      return secret !== undefined && gitLabTokenMatches(secret, token);
    });
    if (verified.length === 0) {
      throw unauthenticated(
        `X-Gitlab-Token is not the secret of any pipeline that watches ${project} (spec.triggers.gitlab): check ` +
          "the webhook's secret token and the project in the pipeline",
      );
    }
    const act = (): Promise<HostDeliveryResult> =>
      actOnGitLab(event, delivery, JSON.parse(body.toString('utf8')) as unknown, verified);
    // Without a delivery id there is nothing to recognise a replay by; what a delivery does is idempotent.
    const outcome = delivery
      ? await deliveries.once(`gitlab/${delivery}`, act)
      : { duplicate: false as const, result: await act() };
    answerHostDelivery(res, outcome, { source: 'gitlab', event, delivery, repository: project });
  });

  const actOnGitLab = async (
    event: string,
    delivery: string | undefined,
    payload: unknown,
    verified: Concerned<GitLabTrigger>[],
  ): Promise<HostDeliveryResult> => {
    const result: HostDeliveryResult = { event, ...(delivery ? { delivery } : {}), pipelines: [] };
    const kind = event === 'Push Hook' ? 'push' : event === 'Merge Request Hook' ? 'merge_request' : undefined;
    const listening = verified.filter(({ status, trigger }) => {
      const takes = kind !== undefined && (trigger.events as readonly string[]).includes(kind);
      if (!takes) {
        result.pipelines.push({
          pipeline: status.name,
          ignored: kind
            ? `event "${kind}" is not among spec.triggers.gitlab events (${trigger.events.join(', ')})`
            : `event "${event}" is not acted on`,
        });
      }
      return takes;
    });
    if (kind === 'push') {
      const push = parseShape(payload, GitLabPush);
      await pushRegistersFreight(result, listening, {
        ref: push.ref,
        after: push.after,
        deleted: /^0+$/.test(push.after),
        urls: [push.project.git_http_url, push.project.git_ssh_url, push.project.web_url],
        where: push.project.path_with_namespace,
      });
      return result;
    }
    if (kind === 'merge_request' && listening.length > 0) {
      const mr = parseShape(payload, GitLabMergeRequest);
      const attributes = mr.object_attributes;
      if (attributes.action !== 'merge') {
        for (const { status } of listening) {
          result.pipelines.push({
            pipeline: status.name,
            ignored: `merge request !${attributes.iid}: action "${attributes.action ?? ''}" is not acted on (only "merge")`,
          });
        }
        return result;
      }
      const { signalled } = await ferry.pullRequestMerged({
        provider: 'gitlab',
        repository: mr.project.path_with_namespace,
        number: attributes.iid,
        ...(attributes.merge_commit_sha ? { mergeCommit: attributes.merge_commit_sha } : {}),
      });
      for (const { status } of listening) result.pipelines.push({ pipeline: status.name });
      return { ...result, signalled };
    }
    return result;
  };

  // --- Gitea (and Forgejo, which sends the same payloads and, besides its own X-Forgejo-* headers, the X-Gitea-* ones)

  router.post('/gitea', async (req, res) => {
    const body = await readRawBody(req, maxBody);
    const signature = parseGiteaSignature(req.get('x-gitea-signature') ?? req.get('x-forgejo-signature'));
    if (!signature) {
      throw unauthenticated(
        'missing or malformed X-Gitea-Signature: give the Gitea webhook a secret (Ferry takes no unsigned deliveries)',
      );
    }
    const event = req.get('x-gitea-event')?.trim() || requiredHeader(req, 'X-Forgejo-Event');
    const delivery = req.get('x-gitea-delivery')?.trim() || requiredHeader(req, 'X-Forgejo-Delivery');
    const payload = parseJsonBody(body, GiteaDelivery);
    const repository = payload.repository.full_name;

    const watching = await pipelinesWith((spec) =>
      spec.triggers?.gitea?.find((t) => t.repository.toLowerCase() === repository.toLowerCase()),
    );
    const verified = verifiedBy(watching, (trigger, pipeline) => {
      const secret = secretFor(trigger.secret, pipeline);
      return secret !== undefined && verifyGiteaDelivery(secret, body, signature);
    });
    if (verified.length === 0) {
      throw unauthenticated(
        `X-Gitea-Signature does not verify with the secret of any pipeline that watches ${repository} ` +
          "(spec.triggers.gitea): check the webhook's secret and the repository in the pipeline",
      );
    }
    const outcome = await deliveries.once(`gitea/${delivery}`, () =>
      actOnGitea(event, delivery, JSON.parse(body.toString('utf8')) as unknown, verified),
    );
    answerHostDelivery(res, outcome, { source: 'gitea', event, delivery, repository });
  });

  const actOnGitea = async (
    event: string,
    delivery: string,
    payload: unknown,
    verified: Concerned<GiteaTrigger>[],
  ): Promise<HostDeliveryResult> => {
    const result: HostDeliveryResult = { event, delivery, pipelines: [] };
    const listening = verified.filter(({ status, trigger }) => {
      const takes = (trigger.events as readonly string[]).includes(event);
      if (!takes) {
        result.pipelines.push({
          pipeline: status.name,
          ignored: (GITEA_TRIGGER_EVENTS as readonly string[]).includes(event)
            ? `event "${event}" is not among spec.triggers.gitea events (${trigger.events.join(', ')})`
            : `event "${event}" is not acted on`,
        });
      }
      return takes;
    });
    if (event === 'push') {
      const push = parseShape(payload, GiteaPush);
      await pushRegistersFreight(result, listening, {
        ref: push.ref,
        after: push.after,
        deleted: /^0+$/.test(push.after),
        urls: [push.repository.clone_url, push.repository.html_url, push.repository.ssh_url],
        where: push.repository.full_name,
      });
      return result;
    }
    if (event === 'pull_request' && listening.length > 0) {
      const pr = parseShape(payload, GiteaPullRequestEvent);
      if (pr.action !== 'closed' || pr.pull_request.merged !== true) {
        for (const { status } of listening) {
          result.pipelines.push({
            pipeline: status.name,
            ignored: `pull request #${pr.number} was ${pr.action}${pr.action === 'closed' ? ' without merging' : ''}`,
          });
        }
        return result;
      }
      const { signalled } = await ferry.pullRequestMerged({
        provider: 'gitea',
        repository: pr.repository.full_name,
        number: pr.number,
        ...(pr.pull_request.merge_commit_sha ? { mergeCommit: pr.pull_request.merge_commit_sha } : {}),
      });
      for (const { status } of listening) result.pipelines.push({ pipeline: status.name });
      return { ...result, signalled };
    }
    return result;
  };

  // --- shared by GitHub, GitLab and Gitea

  /** A push to a branch registers freight for the git artifacts of that repository and branch. */
  const pushRegistersFreight = async (
    result: HostDeliveryResult,
    listening: Concerned<unknown>[],
    push: { ref: string; after: string; deleted: boolean; urls: (string | undefined)[]; where: string },
  ): Promise<void> => {
    const branch = push.ref.startsWith('refs/heads/') ? push.ref.slice('refs/heads/'.length) : undefined;
    const urls = push.urls.filter((u): u is string => typeof u === 'string' && u !== '').map(scpToUrl);
    for (const { status } of listening) {
      if (!branch || push.deleted) {
        result.pipelines.push({
          pipeline: status.name,
          ignored: push.deleted ? `${push.ref} was deleted` : `${push.ref} is not a branch`,
        });
        continue;
      }
      const artifacts = status.spec.spec.artifacts.filter(
        (a) => a.git && a.git.branch === branch && urls.some((u) => sameRepository(u, a.git!.url)),
      );
      if (artifacts.length === 0) {
        result.pipelines.push({
          pipeline: status.name,
          ignored: `no git artifact follows ${push.where} branch ${branch}`,
        });
        continue;
      }
      await forPipeline(result, status, () =>
        registerFreight(status, Object.fromEntries(artifacts.map((a) => [a.name, push.after]))),
      );
    }
    finished(result);
  };

  /**
   * One pipeline's part of a host delivery: a refusal (bad version, full catalogue) is that pipeline's answer
   * and the others go on; Temporal being unreachable fails the whole delivery, so the sender retries it.
   */
  const forPipeline = async (
    result: HostDeliveryResult,
    status: PipelineStatus,
    register: () => Promise<FreightRegistered>,
  ): Promise<void> => {
    try {
      const { pipeline: _pipeline, ...freight } = await register();
      result.pipelines.push({ pipeline: status.name, freight });
    } catch (err) {
      if (!(err instanceof FerryError) || err.code === 'Unavailable' || err.code === 'Internal') throw err;
      const detail = err.details?.errors?.map((e) => `${e.path}: ${e.message}`).join('; ');
      result.pipelines.push({
        pipeline: status.name,
        error: { code: err.code, message: detail ? `${err.message}: ${detail}` : err.message },
      });
    }
  };

  /** A delivery that every pipeline refused is answered as the refusal (a 4xx), so the sender's log shows it. */
  const finished = (result: HostDeliveryResult): HostDeliveryResult => {
    const refused = result.pipelines.filter((p) => p.error);
    if (refused.length > 0 && !result.pipelines.some((p) => p.freight)) {
      throw new FerryError(
        refused[0].error!.code as FerryError['code'],
        `no pipeline took the ${result.event} delivery`,
        { errors: refused.map((p) => ({ path: `pipelines.${p.pipeline}`, message: p.error!.message })) },
      );
    }
    return result;
  };

  const answerHostDelivery = (
    res: Response,
    outcome: { duplicate: true } | { duplicate: false; result: HostDeliveryResult },
    context: { source: string; event: string; delivery?: string; repository: string },
  ): void => {
    if (outcome.duplicate) {
      log.info('webhook delivery acknowledged as a duplicate', context);
      res.status(200).json({ duplicate: true });
      return;
    }
    log.info('webhook delivery', {
      ...context,
      pipelines: outcome.result.pipelines.map((p) => ({
        pipeline: p.pipeline,
        ...(p.freight ? { freight: p.freight.id, created: p.freight.created } : {}),
        ...(p.ignored ? { ignored: p.ignored } : {}),
        ...(p.error ? { error: p.error.code } : {}),
      })),
      ...(outcome.result.signalled ? { signalled: outcome.result.signalled } : {}),
    });
    res.status(200).json(outcome.result);
  };

  router.use(webhookErrors);
  return router;
}

// ---------------------------------------------------------------------------------------------------------------

function verifiedBy<T>(
  candidates: Concerned<T>[],
  verifies: (trigger: T, pipeline: string) => boolean,
): Concerned<T>[] {
  return candidates.filter(({ status, trigger }) => verifies(trigger, status.name));
}

function unauthenticated(message: string): FerryError {
  return new FerryError('Unauthenticated', message);
}

function invalid(message: string, errors?: FieldError[]): FerryError {
  return new FerryError('InvalidArgument', message, errors ? { errors } : undefined);
}

function requiredHeader(req: Request, name: string): string {
  const value = req.get(name)?.trim();
  if (!value) throw invalid(`missing ${name} header`);
  return value;
}

function parseJsonBody<T extends z.ZodType>(body: Buffer, schema: T): z.output<T> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw invalid(`request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseShape(value, schema);
}

function parseShape<T extends z.ZodType>(value: unknown, schema: T): z.output<T> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('request body must be a JSON object');
  }
  const result = schema.safeParse(value);
  if (!result.success) throw invalid('request body is invalid', specErrorsFromZod(result.error, value));
  return result.data;
}

/** `git@github.com:org/app.git` (scp-like) as `ssh://git@github.com/org/app.git`, so URLs compare. */
function scpToUrl(url: string): string {
  const scp = /^([^@/:]+@)?([^/:]+):(?!\/\/)(.+)$/.exec(url);
  return scp && !url.includes('://') ? `ssh://${scp[1] ?? ''}${scp[2]}/${scp[3]}` : url;
}

type GitHubPackage = NonNullable<z.output<typeof GitHubPackageEvent>['package']>;

/** The image a published container package is: its package_url without tag or digest, else ghcr.io/<owner>/<name>. */
function imageOfPackage(pkg: GitHubPackage): string {
  const url = pkg.package_version.package_url;
  if (url) {
    let image = url.replace(/^[a-z]+:\/\//i, '');
    const at = image.indexOf('@');
    if (at >= 0) image = image.slice(0, at);
    const colon = image.lastIndexOf(':');
    if (colon > image.lastIndexOf('/')) image = image.slice(0, colon);
    return image.toLowerCase();
  }
  return `ghcr.io/${pkg.namespace ? `${pkg.namespace}/` : ''}${pkg.name}`.toLowerCase();
}

/** The tag the version was published under, else its digest. */
function versionOfPackage(pkg: GitHubPackage): string | undefined {
  const tag = pkg.package_version.container_metadata?.tag;
  if (tag?.name && IMAGE_TAG.test(tag.name)) return tag.name;
  if (IMAGE_DIGEST.test(pkg.package_version.version)) return pkg.package_version.version;
  if (tag?.digest && IMAGE_DIGEST.test(tag.digest)) return tag.digest;
  return undefined;
}

/** Image repositories compared as registries do: case-insensitively, Docker Hub's spellings as one. */
function sameImage(a: string, b: string): boolean {
  const normalize = (image: string): string =>
    image
      .toLowerCase()
      .replace(/^(index\.docker\.io|registry-1\.docker\.io)\//, 'docker.io/')
      .replace(/^docker\.io\/library\//, 'docker.io/');
  return normalize(a) === normalize(b);
}

/** The webhooks' own error answers: the API's one error shape, without the bearer-token challenge. */
function webhookErrors(err: unknown, _req: Request, res: Response, next: NextFunction): void {
  if (res.headersSent) {
    next(err);
    return;
  }
  if (err instanceof BodyTooLarge) {
    refuseLargeBody(res, err);
    return;
  }
  if (err instanceof FerryError && err.code !== 'Internal') {
    res.status(err.status).json(err.toJSON());
    return;
  }
  next(err);
}
