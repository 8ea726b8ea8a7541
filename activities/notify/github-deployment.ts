// The `github-deployment` target: one GitHub deployment per promotion run into the stage's environment, and its
// statuses as the promotion goes: `in_progress` when it starts, then `success`, `failure` (failed or rejected) or
// `error` (aborted) when it ends. A success marks the previous successful deployments of that environment
// `inactive` explicitly (we send `auto_inactive: false` and do it ourselves, because GitHub's automatic
// inactivation skips production environments), so the Environments page shows what runs where.
//
// Idempotency: the deployment carries `payload.ferry = { promotion, runId }`; every delivery first looks for it
// (GET /deployments?environment=…), so a retried or late delivery finds the deployment instead of making a second
// one, and a status already posted (the newest status has that state) is not posted again. The deliveries of one
// promotion reach this code in order (the delivery workflow waits for the previous one), so statuses reach GitHub
// in order.
import type { FerryEvent } from '../../workflows/events';
import type { GitHubDeploymentTarget } from './types';
import { excerpt, failureFor, httpCall, type HttpAnswer, type HttpCall } from './http';

export const GITHUB_API_VERSION = '2022-11-28';

export type DeploymentState = 'in_progress' | 'success' | 'failure' | 'error' | 'inactive';

/** The status a promotion event sets, or undefined for events a deployment does not show. */
export function deploymentStateFor(type: FerryEvent['type']): DeploymentState | undefined {
  switch (type) {
    case 'dev.ferry.promotion.started':
      return 'in_progress';
    case 'dev.ferry.promotion.succeeded':
      return 'success';
    case 'dev.ferry.promotion.failed':
    case 'dev.ferry.promotion.rejected':
      return 'failure';
    case 'dev.ferry.promotion.aborted':
      return 'error';
    default:
      return undefined;
  }
}

interface Deployment {
  id: number;
  environment: string;
  payload?: { ferry?: { promotion?: string; runId?: string } } | string;
}
interface DeploymentStatus {
  id: number;
  state: string;
}

export interface GitHubDelivery {
  target: GitHubDeploymentTarget;
  token: string;
  event: FerryEvent;
  where: string;
  timeoutMs: number;
  userAgent: string;
}

/** How many of an environment's newest deployments are looked through (ours, and the ones to mark inactive). */
const LOOK_BACK = 30;

export async function deliverGitHubDeployment(
  delivery: GitHubDelivery,
): Promise<{ outcome: 'delivered' | 'skipped'; detail: string }> {
  const { target, event } = delivery;
  const { data } = event;
  const state = deploymentStateFor(event.type);
  if (!state || !data.stage || !data.promotion)
    return { outcome: 'skipped', detail: `${event.type} is not shown on a deployment` };
  const stage = data.stage;
  const promotion = data.promotion;
  const api = target.apiUrl.replace(/\/+$/, '');
  const repo = `${api}/repos/${target.repository}`;

  const call = async (method: 'GET' | 'POST', url: string, body?: unknown): Promise<HttpAnswer & { json: unknown }> => {
    const request: HttpCall = {
      method,
      url,
      headers: {
        Accept: 'application/vnd.github+json',
        'X-GitHub-Api-Version': GITHUB_API_VERSION,
        Authorization: `Bearer ${delivery.token}`,
        'User-Agent': delivery.userAgent,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      where: delivery.where,
      timeoutMs: delivery.timeoutMs,
    };
    const answer = await httpCall(request);
    if (answer.status < 200 || answer.status >= 300) {
      let message = excerpt(answer.text);
      try {
        const parsed = JSON.parse(answer.text) as {
          message?: string;
          errors?: Array<{ message?: string; field?: string; code?: string }>;
        };
        const errors = (parsed.errors ?? []).map((e) => e.message ?? `${e.field ?? ''} ${e.code ?? ''}`.trim());
        if (parsed.message) message = [parsed.message, ...errors].join('; ');
      } catch {
        // not JSON: keep the excerpt
      }
      throw failureFor(
        { method, where: `${delivery.where} ${method} ${url.slice(api.length).split('?')[0]}` },
        answer,
        message,
      );
    }
    return { ...answer, json: answer.text ? JSON.parse(answer.text) : undefined };
  };

  const ferryOf = (d: Deployment) => (typeof d.payload === 'object' && d.payload ? d.payload.ferry : undefined);
  const listed = (
    await call('GET', `${repo}/deployments?environment=${encodeURIComponent(stage)}&per_page=${LOOK_BACK}`)
  ).json as Deployment[];
  let deployment = listed.find((d) => ferryOf(d)?.promotion === promotion.id && ferryOf(d)?.runId === promotion.runId);

  const production = target.productionEnvironments
    ? target.productionEnvironments.includes(stage)
    : stage === 'prod' || stage === 'production';
  const versions = Object.entries(data.freight.artifacts)
    .map(([name, version]) => `${name}:${version}`)
    .join(', ');
  if (!deployment) {
    deployment = (
      await call('POST', `${repo}/deployments`, {
        // The commit is written after the promotion starts, so the first status names the stage's branch.
        ref: data.commit ?? data.branch ?? stage,
        task: 'deploy',
        auto_merge: false,
        required_contexts: [],
        environment: stage,
        description: `Ferry: ${versions}`.slice(0, 140),
        transient_environment: false,
        production_environment: production,
        payload: {
          ferry: {
            promotion: promotion.id,
            runId: promotion.runId,
            freight: data.freight.id,
            artifacts: data.freight.artifacts,
            requestedBy: promotion.requestedBy,
          },
        },
      })
    ).json as Deployment;
  }
  const statusesUrl = `${repo}/deployments/${deployment.id}/statuses`;
  const newest = ((await call('GET', `${statusesUrl}?per_page=1`)).json as DeploymentStatus[])[0];
  if (newest?.state === state) return { outcome: 'delivered', detail: `deployment ${deployment.id} already ${state}` };
  if (state === 'in_progress' && newest && newest.state !== 'queued' && newest.state !== 'pending') {
    // The promotion has already ended on GitHub; a late start must not reopen it.
    return { outcome: 'skipped', detail: `deployment ${deployment.id} is already ${newest.state}` };
  }

  const description =
    state === 'in_progress'
      ? `Promoting ${versions}`
      : state === 'success'
        ? `Promoted ${versions}${data.commit ? ` at ${data.commit.slice(0, 12)}` : ''}`
        : `${data.reason ?? state}: ${data.error ?? ''}`;
  await call('POST', statusesUrl, {
    state,
    description: description.slice(0, 140),
    environment: stage,
    ...(data.run.url ? { log_url: data.run.url, environment_url: data.run.url } : {}),
    auto_inactive: false,
  });

  let inactivated = 0;
  if (state === 'success') {
    for (const previous of listed) {
      if (previous.id === deployment.id || previous.id > deployment.id) continue;
      const latest = (
        (await call('GET', `${repo}/deployments/${previous.id}/statuses?per_page=1`)).json as DeploymentStatus[]
      )[0];
      if (latest?.state !== 'success') continue;
      await call('POST', `${repo}/deployments/${previous.id}/statuses`, {
        state: 'inactive',
        description: `Replaced by deployment ${deployment.id} (${versions})`.slice(0, 140),
        environment: stage,
        auto_inactive: false,
      });
      inactivated++;
    }
  }
  return {
    outcome: 'delivered',
    detail: `deployment ${deployment.id} ${state}${inactivated ? `; ${inactivated} previous marked inactive` : ''}`,
  };
}
