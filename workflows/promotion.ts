// Promotion workflow: one freight into one stage.
//   approval gate → stage lock → preflight → render and push (the git step) → sync Argo CD → healthy at that revision
//   → the stage's gates (callbacks from other systems, http polls).
// This file is the Temporal wiring; the status and its rules (approvals, who may abort, failures and their
// reasons) are plain functions in promotion-core.ts. The stage lock is the pipeline's (pipeline-core.ts); the git
// step is the renderAndPush activity (activities/render-and-push.ts).
// Deterministic code only: all I/O happens in activities, which this file knows by type alone.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { PullRequestStatusResult } from '../activities/pull-request';
import type { RenderAndPushResult } from '../activities/types';
import { pullRequestKey } from '../pipeline/ids';
import { deployedBranch, describeTarget, stageLayout } from '../pipeline/layout';
import { Reason } from '../pipeline/reasons';
import { createEmitter } from './delivery';
import { TERMINAL_EVENT, type FerryEventData, type FerryEventType } from './events';
import {
  abortUpdate,
  approveSignal,
  approveUpdate,
  decideGateUpdate,
  promotionFinishedSignal,
  promotionStatusQuery,
  promotionWorkflowId,
  pullRequestMergedSignal,
  RefusalType,
  rejectUpdate,
  stageGrantedSignal,
  stageLockRequestedSignal,
  type Decision,
  type GatePhase,
  type GateStatus,
  type PromotionInput,
  type PromotionPhase,
  type PromotionStatus,
  type StepName,
} from './messages';
import {
  abortRefusal,
  approvalRefusal,
  decideGate,
  endStep as endStepOf,
  failureMessage,
  failureReason,
  findGate,
  gateDecisionRefusal,
  gateOutcome,
  newPromotionStatus,
  recordOf,
  settle,
  startStep as startStepOf,
} from './promotion-core';
import { FerryPhase, FerryPullRequest } from './search-attributes';

const git = proxyActivities<FerryActivities>({
  // Above the git step's own 10-minute network timeout, so a slow first clone can finish; the heartbeat timeout
  // still notices a dead worker within a minute.
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

// Every check that can be made before the first git write; its failures are non-retryable and name what to fix.
const preflight = proxyActivities<FerryActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '15s', maximumAttempts: 5 },
});

const argoSync = proxyActivities<FerryActivities>({
  startToCloseTimeout: '3 minutes',
  heartbeatTimeout: '20s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

// The git host's REST API (open, read, close a pull request): retried with backoff through rate limits and outages.
const hosts = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 20 },
});

// Closing a pull request the promotion gave up on: a few tries only, so an abort is not held up by a host outage.
const closing = proxyActivities<FerryActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 3 },
});

/** Parses the stage's `argocd.timeout` (validated at the edge as `\d+(ms|s|m|h)`). */
export function durationMs(text: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!match) throw ApplicationFailure.nonRetryable(`invalid duration "${text}"`, RefusalType.InvalidArgument);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}

export async function promotionWorkflow(input: PromotionInput): Promise<PromotionStatus> {
  const { workflowId, runId } = workflowInfo();
  const now = (): string => new Date().toISOString();
  const { stage, freight } = input;
  // The branch the stage's manifests end up on, which its Argo CD application tracks.
  const branch = deployedBranch(input.repo, stage.render);
  // A pull request whose approving reviews are the stage's approval: no Ferry approval before it is opened.
  const approvalOnHost = stage.render.strategy === 'pull-request' && stage.render.pullRequest?.approvalOnHost === true;

  // Promotions started before the preflight existed replay without it; new ones check before they write.
  const withPreflight = patched('preflight-before-write');
  // Gates came after; a stage without gates runs no gate command, so only promotions with gates ask.
  const withGates = (stage.gates?.length ?? 0) > 0 && patched('promotion-gates');
  const status = newPromotionStatus(input, workflowId, now(), withPreflight, withGates);

  const versions = Object.entries(freight.artifacts)
    .map(([name, version]) => `${name}:${version}`)
    .join(', ');

  // Outbound events: each state change below emits one; deliveries run in their own workflows (delivery.ts).
  const events = createEmitter(
    input.pipeline,
    promotionWorkflowId(input.pipeline, stage.name, freight.id),
    () => input.notify,
  );
  const eventData = (extra: Partial<FerryEventData> = {}, phase = status.phase): Omit<FerryEventData, 'run'> => ({
    pipeline: input.pipeline,
    stage: stage.name,
    freight: { id: freight.id, artifacts: freight.artifacts },
    promotion: {
      id: workflowId,
      runId,
      phase,
      requestedBy: input.requestedBy,
      startedAt: status.startedAt,
      ...(status.finishedAt ? { finishedAt: status.finishedAt } : {}),
    },
    branch,
    ...(status.commit ? { commit: status.commit } : {}),
    ...(status.sourceCommit ? { sourceCommit: status.sourceCommit } : {}),
    ...extra,
  });

  const showDetails = (): void => {
    const lines = [
      `**${status.phase}** — ${input.pipeline}/${stage.name} ← freight \`${freight.id}\` (${versions})`,
      '',
      ...status.steps.map((s) => `- ${s.name}: ${s.status}${s.message ? ` — ${s.message}` : ''}`),
      ...(status.gates ?? []).map(
        (g) =>
          `- gate ${g.name} (${g.type}): ${g.phase === 'Waiting' ? `Waiting until ${g.deadline ?? '?'}` : g.phase}` +
          (g.phase === 'Waiting' || g.phase === 'Pending' ? '' : ` — ${gateOutcome(g)}`),
      ),
    ];
    if (status.commit) lines.push('', `commit \`${status.commit}\` on \`${branch}\``);
    if (status.error) lines.push('', `error: ${status.error}`);
    setCurrentDetails(lines.join('\n'));
  };

  const setPhase = (phase: PromotionPhase): void => {
    status.phase = phase;
    upsertSearchAttributes([{ key: FerryPhase, value: phase }]);
    showDetails();
  };
  const startStep = (name: StepName, message?: string): void => {
    startStepOf(status, name, now(), message);
    showDetails();
  };
  const endStep = (
    name: StepName,
    result: 'Succeeded' | 'Failed' | 'Cancelled' | 'Skipped',
    message?: string,
  ): void => {
    endStepOf(status, name, result, now(), message);
    showDetails();
  };

  // A promotion tells its pipeline that it finished before its terminal phase becomes visible, so whoever sees
  // `Succeeded` and promotes the freight onward finds the pipeline already knowing it (no 409 race). Runs
  // started before this change showed the phase first; they replay that way.
  const reportBeforeTerminalPhase = patched('report-to-pipeline-before-terminal-phase');
  let ending: PromotionPhase | undefined;
  const finish = (phase: PromotionPhase): void => {
    ending = phase;
    if (!reportBeforeTerminalPhase) setPhase(phase);
  };

  // --- message handlers: registered before the first await so no update is ever refused for want of a handler.
  // The rules (who may decide, when a decision is final) live in promotion-core.ts; the handlers apply them
  // synchronously, so of two decisions racing in one workflow task the second sees the first.
  let granted = input.granted === true;
  const scope = new CancellationScope();

  setHandler(promotionStatusQuery, () => status);

  const recordApproval = (decision: Decision): void => {
    status.approvals.push(recordOf(decision, now()));
    showDetails();
  };
  /** The answer to a decision is the state after it: an approval that closes the gate shows the gate passed. */
  const stateAfterDecision = async (): Promise<PromotionStatus> => {
    if (patched('decision-answers-state-after')) {
      await condition(
        () => status.phase !== 'AwaitingApproval' || status.approvals.length < (status.approval?.required ?? 0),
      );
    }
    return status;
  };
  setHandler(
    approveUpdate,
    (decision) => {
      recordApproval(decision);
      return stateAfterDecision();
    },
    {
      validator: (decision) => {
        const refused = approvalRefusal(status, decision, 'approve', ending);
        if (refused) throw refused;
      },
      description: 'Approve the promotion; refused at once when the user is not an approver or the gate is closed.',
    },
  );
  setHandler(approveSignal, (decision) => {
    const refused = approvalRefusal(status, decision, 'approve', ending);
    if (refused) log.warn('approval signal ignored', { reason: refused.message });
    else recordApproval(decision);
  });
  setHandler(
    rejectUpdate,
    (decision) => {
      status.rejectedBy = recordOf(decision, now());
      scope.cancel();
      return status;
    },
    {
      validator: (decision) => {
        const refused = approvalRefusal(status, decision, 'reject', ending);
        if (refused) throw refused;
      },
      description: 'Reject the promotion while it awaits approval; it fails with phase Rejected.',
    },
  );
  setHandler(
    abortUpdate,
    (decision) => {
      status.abortedBy = recordOf(decision, now());
      scope.cancel();
      return status;
    },
    {
      validator: (decision) => {
        const refused = abortRefusal(status, decision, ending);
        if (refused) throw refused;
      },
      description: 'Abort the promotion at any step (its requester, the stage approvers or an admin).',
    },
  );
  setHandler(
    decideGateUpdate,
    (decision) => {
      const gate = decideGate(status, decision, now());
      showDetails();
      return gate;
    },
    {
      validator: (decision) => {
        const refused = gateDecisionRefusal(status, decision, ending);
        if (refused) throw refused;
      },
      description:
        "A callback gate's result (pass or fail, with a reason), as the HTTP API delivers it after checking the " +
        "gate's one-time token; refused unless that gate is waiting.",
    },
  );
  setHandler(stageGrantedSignal, () => {
    granted = true;
  });

  showDetails();
  events.emit('dev.ferry.promotion.started', eventData({ actor: { user: input.requestedBy } }));

  // --- the pull-request strategy: open the pull request, wait until the host merges it, continue with the merge.
  const pullRequestSpec = stage.render.strategy === 'pull-request' ? stage.render.pullRequest : undefined;
  const pullRequestTarget = pullRequestSpec
    ? { pipeline: input.pipeline, stage: stage.name, repo: input.repo, pullRequest: pullRequestSpec }
    : undefined;
  /** Set by a webhook (through the API) when the host says the pull request was merged: look now. */
  let mergeReported = false;
  setHandler(pullRequestMergedSignal, (merged) => {
    const pr = status.pullRequest;
    if (pr && pr.provider === merged.provider && pr.number === merged.number) mergeReported = true;
  });

  const throughPullRequest = async (written: RenderAndPushResult): Promise<string> => {
    const spec = pullRequestSpec!;
    const target = pullRequestTarget!;
    if (!written.pullRequest) {
      const already = `${branch} already holds this render; no pull request needed`;
      endStep('pull-request', 'Skipped', already);
      endStep('merge', 'Skipped', already);
      return written.commit;
    }
    const { head, base } = written.pullRequest;
    startStep('pull-request', `opening a pull request from ${head} into ${base} on ${spec.provider}`);
    const opened = await hosts.openPullRequest({
      ...target,
      head,
      base,
      title: `Promote ${freight.id} to ${input.pipeline}/${stage.name}`,
      body: [
        `Ferry promotes freight \`${freight.id}\` (${versions}) into stage **${stage.name}** of pipeline **${input.pipeline}**, requested by ${input.requestedBy}.`,
        '',
        `Merge this pull request to deploy it: the promotion (\`${workflowId}\`) waits for the merge and then continues with the merge commit. Closing it without merging fails the promotion.`,
      ].join('\n'),
    });
    status.pullRequest = {
      provider: opened.provider,
      repository: opened.repository,
      number: opened.number,
      url: opened.url,
      head,
      base,
      state: 'open',
    };
    // The webhook route finds the waiting promotion by this key.
    upsertSearchAttributes([
      { key: FerryPullRequest, value: pullRequestKey(opened.provider, opened.repository, opened.number) },
    ]);
    endStep('pull-request', 'Succeeded', `${opened.created ? 'opened' : 'found'} ${opened.url}`);

    setPhase('AwaitingMerge');
    startStep('merge', `waiting until ${opened.url} is merged`);
    const timeoutMs = durationMs(spec.timeout);
    const deadline = new Date(Date.now() + timeoutMs).toISOString();
    const waiter = proxyActivities<FerryActivities>({
      startToCloseTimeout: timeoutMs + 120_000,
      heartbeatTimeout: '30s',
      retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 20 },
    });
    const asked = { ...target, number: opened.number };
    let seen: PullRequestStatusResult | undefined;
    for (;;) {
      mergeReported = false;
      // Polls inside one activity; a merge reported by webhook ends that wait and looks at once.
      let polled: PullRequestStatusResult | undefined;
      let pollFailed: unknown;
      const polling = new CancellationScope();
      const running = polling
        .run(() => waiter.waitForPullRequest({ ...asked, pollIntervalMs: durationMs(spec.pollInterval), deadline }))
        .then(
          (state) => (polled = state),
          (err: unknown) => (pollFailed = err ?? new Error('the wait for the pull request failed')),
        );
      await condition(() => mergeReported || polled !== undefined || pollFailed !== undefined);
      if (polled === undefined && pollFailed === undefined) {
        polling.cancel();
        await running;
        seen = await hosts.pullRequestStatus(asked);
        if (seen.state === 'open') continue; // a stale delivery: keep waiting
        break;
      }
      if (pollFailed !== undefined) throw pollFailed;
      seen = polled;
      break;
    }
    if (!seen) throw new Error('unreachable: the pull request was never read');
    Object.assign(status.pullRequest, {
      state: seen.state,
      approvedBy: seen.approvedBy,
      ...(seen.mergeCommit ? { mergeCommit: seen.mergeCommit } : {}),
    });
    showDetails();
    if (seen.state === 'open') {
      throw ApplicationFailure.create({
        message: `pull request ${opened.url} was not merged within ${spec.timeout}; it is still open`,
        type: Reason.PullRequestTimedOut,
        nonRetryable: true,
      });
    }
    if (seen.state === 'closed') {
      throw ApplicationFailure.create({
        message: `pull request ${opened.url} was closed without being merged`,
        type: Reason.PullRequestClosed,
        nonRetryable: true,
      });
    }
    if (approvalOnHost && stage.approval) {
      const approvers = new Set(stage.approval.approvers);
      const approved = seen.approvedBy.filter((user) => approvers.has(user));
      for (const user of approved) status.approvals.push({ user, at: now(), comment: `approved ${opened.url}` });
      if (approved.length < stage.approval.required) {
        throw ApplicationFailure.create({
          message:
            `pull request ${opened.url} was merged with ${approved.length} of the ${stage.approval.required} ` +
            `approval${stage.approval.required === 1 ? '' : 's'} the stage needs from ${stage.approval.approvers.join(', ')}` +
            (seen.approvedBy.length > approved.length
              ? ` (approved by ${seen.approvedBy.join(', ')}, not all of them approvers)`
              : ''),
          type: Reason.PullRequestNotApproved,
          nonRetryable: true,
        });
      }
    }
    endStep('merge', 'Succeeded', `merged as ${seen.mergeCommit!.slice(0, 12)} into ${base}`);
    return seen.mergeCommit!;
  };

  let failure: unknown;
  try {
    await scope.run(async () => {
      if (stage.approval && !approvalOnHost) {
        setPhase('AwaitingApproval');
        startStep('approval', `needs ${stage.approval.required} of ${stage.approval.approvers.join(', ')}`);
        const gate = { required: stage.approval.required, approvers: stage.approval.approvers };
        events.emit('dev.ferry.approval.requested', eventData({ approval: { ...gate, approvals: [] } }));
        const required = stage.approval.required;
        await condition(() => status.approvals.length >= required);
        endStep('approval', 'Succeeded', `approved by ${status.approvals.map((a) => a.user).join(', ')}`);
        const last = status.approvals[status.approvals.length - 1];
        events.emit(
          'dev.ferry.promotion.approved',
          eventData({
            actor: { user: last.user, ...(last.comment ? { comment: last.comment } : {}) },
            approval: { ...gate, approvals: [...status.approvals] },
          }),
        );
      }

      setPhase('Queued');
      startStep('queue', `waiting for stage ${stage.name}`);
      // A stage that was free when the pipeline started us was granted with the start: no handshake.
      if (!granted) {
        await getExternalWorkflowHandle(input.pipelineWorkflowId).signal(stageLockRequestedSignal, {
          id: workflowId,
          runId,
          stage: stage.name,
        });
        await condition(() => granted);
      }
      endStep('queue', 'Succeeded', `stage ${stage.name} is ours`);

      if (withPreflight) {
        // Nothing is written before everything that can be checked was: credentials, the Argo CD app and where
        // its source points. A failed check fails the promotion here, with the branch untouched.
        startStep('preflight', `checking credentials${stage.argocd ? ` and Argo CD app ${stage.argocd.app}` : ''}`);
        const checked = await preflight.preflightPromotion({
          pipeline: input.pipeline,
          stage: stage.name,
          repo: input.repo,
          render: stage.render,
          ...(stage.argocd ? { argocd: stage.argocd } : {}),
        });
        endStep('preflight', 'Succeeded', checked.checked.length > 0 ? checked.checked.join('; ') : 'nothing to check');
      }

      setPhase('Rendering');
      startStep(
        'render',
        stageLayout(stage.render) === 'directory'
          ? `editing ${describeTarget(input.repo, stage.render)}`
          : `rendering ${describeTarget(input.repo, stage.render)}`,
      );
      const written = await git.renderAndPush({
        pipeline: input.pipeline,
        stage: stage.name,
        promotionId: workflowId,
        runId,
        repo: input.repo,
        render: stage.render,
        artifacts: input.artifacts,
        freight,
      });
      status.sourceCommit = written.sourceCommit;
      const pushedTo = written.pullRequest?.head ?? branch;
      endStep(
        'render',
        'Succeeded',
        written.created
          ? `pushed ${written.commit.slice(0, 12)} to ${pushedTo} (${written.files} file${written.files === 1 ? '' : 's'})`
          : `${pushedTo} already at ${written.commit.slice(0, 12)}; no new commit`,
      );
      // What the stage deploys: the commit written, or, for a pull request, the commit its merge makes.
      let deployed = written.commit;
      if (stage.render.strategy === 'pull-request') deployed = await throughPullRequest(written);
      status.commit = deployed;

      if (stage.argocd) {
        const timeoutMs = durationMs(stage.argocd.timeout);
        const ref = {
          argocd: stage.argocd,
          revision: deployed,
          branch,
          repoUrl: input.repo.url,
          tag: `${workflowId}/${runId}`,
        };
        setPhase('Syncing');
        startStep('sync', `syncing ${stage.argocd.app} to ${deployed.slice(0, 12)}`);
        const synced = await argoSync.syncArgoApp(ref);
        endStep(
          'sync',
          'Succeeded',
          synced.automated ? `auto-sync app ${stage.argocd.app}; refreshed` : `sync of ${stage.argocd.app} requested`,
        );

        setPhase('WaitingHealthy');
        startStep('health', `waiting for ${stage.argocd.app} to be Synced and Healthy at ${deployed.slice(0, 12)}`);
        const health = proxyActivities<FerryActivities>({
          startToCloseTimeout: timeoutMs + 120_000,
          heartbeatTimeout: '10s',
          retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '15s', maximumAttempts: 20 },
        });
        // Other stages write a directory stage's branch too: Argo CD may already deploy a later commit with ours.
        const shared = stageLayout(stage.render) === 'directory' ? { sharedBranch: input.repo } : {};
        const healthy = await health.waitArgoAppHealthy({ ...ref, timeoutMs, ...shared });
        endStep(
          'health',
          'Succeeded',
          `Synced and Healthy at ${healthy.revision.slice(0, 12)} after ${Math.round(healthy.waitedMs / 1000)}s`,
        );
      }

      if (withGates) {
        // In order; each must pass before the next starts. A callback gate waits on a timer for the decideGate
        // update. An http gate polls inside one heartbeating activity rather than a workflow loop of short ones:
        // a poll every few seconds for minutes would fill the history with hundreds of activity events, while the
        // activity keeps its count and clock in its heartbeat (so a retry after a worker crash resumes them) and
        // still stops within seconds of an abort, since cancellation arrives with the next heartbeat.
        const gates = stage.gates ?? [];
        setPhase('AwaitingGates');
        startStep('gates', gates.map((g) => `${g.name} (${g.http ? 'http' : 'callback'})`).join(', '));
        for (const spec of gates) {
          const gate = findGate(status, spec.name) as GateStatus;
          const timeout = spec.callback?.timeout ?? spec.http?.timeout ?? '0s';
          const timeoutMs = durationMs(timeout);
          gate.phase = 'Waiting';
          gate.startedAt = now();
          gate.deadline = new Date(Date.now() + timeoutMs).toISOString();
          showDetails();
          if (spec.callback) {
            // The one-time callback URL is added at delivery (worker/gate-callback-events.ts), never here.
            events.emit(
              'dev.ferry.gate.waiting',
              eventData({ gate: { name: spec.name, type: 'callback', timeout, deadline: gate.deadline } }),
              { change: `gate.waiting/${spec.name}` },
            );
            await condition(() => gate.phase !== 'Waiting', timeoutMs);
            // Decided by the gate's phase, not by condition's answer: a result accepted in the same workflow task
            // as the timer fired has been confirmed to its sender, so it stands.
            if ((gate.phase as GatePhase) === 'Waiting') {
              Object.assign(gate, {
                phase: 'TimedOut',
                at: now(),
                decidedBy: 'timeout',
                reason: Reason.GateTimedOut,
                message: `no result was posted within ${timeout}`,
              });
              throw ApplicationFailure.create({
                message: `gate ${spec.name}: no result was posted to its callback URL within ${timeout}`,
                type: Reason.GateTimedOut,
                nonRetryable: true,
              });
            }
            // Set by the decideGate handler while the condition waited.
            if ((gate.phase as GatePhase) === 'Failed') {
              throw ApplicationFailure.create({
                message: `gate ${spec.name} failed (${gate.decidedBy}): ${gate.message ?? 'no reason given'}`,
                type: Reason.GateFailed,
                nonRetryable: true,
              });
            }
          } else if (spec.http) {
            const poll = proxyActivities<FerryActivities>({
              startToCloseTimeout: timeoutMs + 120_000,
              // Heartbeats go out at most every 0.8 × this: it bounds how long an abort takes to stop the polls.
              heartbeatTimeout: '10s',
              retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '15s', maximumAttempts: 10 },
            });
            const decidedBy = `${spec.http.method} ${spec.http.url}`;
            try {
              const polled = await poll.pollHttpGate({
                pipeline: input.pipeline,
                stage: stage.name,
                promotionId: workflowId,
                gate: spec.name,
                http: spec.http,
              });
              Object.assign(gate, {
                phase: 'Passed',
                at: now(),
                decidedBy,
                attempts: polled.attempts,
                consecutive: polled.consecutive,
                message: polled.last,
              });
            } catch (err) {
              if (!isCancellation(err)) {
                const cause = err instanceof ActivityFailure ? err.cause : err;
                const seen = (cause instanceof ApplicationFailure ? cause.details?.[0] : undefined) as
                  { attempts?: number; consecutive?: number } | undefined;
                const reason = failureReason(err);
                Object.assign(gate, {
                  phase: reason === Reason.GateTimedOut ? 'TimedOut' : 'Failed',
                  at: now(),
                  decidedBy: reason === Reason.GateTimedOut ? 'timeout' : decidedBy,
                  reason,
                  message: failureMessage(err),
                  ...(typeof seen?.attempts === 'number' ? { attempts: seen.attempts } : {}),
                  ...(typeof seen?.consecutive === 'number' ? { consecutive: seen.consecutive } : {}),
                });
              }
              throw err;
            }
          }
          showDetails();
        }
        endStep('gates', 'Succeeded', (status.gates ?? []).map((g) => `${g.name} ${gateOutcome(g)}`).join('; '));
      }
      finish('Succeeded');
    });
  } catch (err) {
    failure = err;
    const phase = settle(status, err, isCancellation(err), now());
    ending = phase;
    if (!reportBeforeTerminalPhase) setPhase(phase);
    // A pull request the promotion no longer waits for is closed, so nobody merges what Ferry does not follow.
    const open = status.pullRequest?.state === 'open' ? status.pullRequest : undefined;
    if (open && pullRequestTarget) {
      const why = status.abortedBy
        ? `Aborted by ${status.abortedBy.user} in Ferry${status.abortedBy.comment ? `: ${status.abortedBy.comment}` : ''}.`
        : `Ferry stopped waiting: ${status.error ?? phase}.`;
      try {
        const closed = await CancellationScope.nonCancellable(() =>
          closing.closePullRequest({ ...pullRequestTarget, number: open.number, comment: why }),
        );
        open.state = closed.state;
      } catch (closeErr) {
        log.warn('could not close the pull request', { url: open.url, error: failureMessage(closeErr) });
      }
      showDetails();
    }
  }

  if (failure === undefined) settle(status, undefined, false, now());
  const finishedAt = now();
  status.finishedAt = finishedAt;
  showDetails();
  // Always tell the pipeline, whatever the phase: it releases the stage lock (or drops us from the queue) and
  // records the result. The signal must go out even when this workflow is being cancelled.
  const finished = {
    id: workflowId,
    runId,
    stage: stage.name,
    freight: freight.id,
    phase: ending ?? status.phase,
    ...(status.commit ? { commit: status.commit } : {}),
    finishedAt,
    ...(status.error ? { error: status.error } : {}),
    ...(status.reason ? { reason: status.reason } : {}),
  };
  const decidedBy = status.rejectedBy ?? status.abortedBy;
  const terminal = TERMINAL_EVENT[finished.phase as keyof typeof TERMINAL_EVENT] as FerryEventType | undefined;
  if (terminal)
    events.emit(
      terminal,
      eventData(
        {
          ...(decidedBy
            ? { actor: { user: decidedBy.user, ...(decidedBy.comment ? { comment: decidedBy.comment } : {}) } }
            : {}),
          ...(status.reason ? { reason: status.reason } : {}),
          ...(status.error ? { error: status.error } : {}),
        },
        finished.phase,
      ),
    );
  // The deliveries must be started (not delivered) before the run closes, since a closed workflow starts no
  // children. They start beside the signal to the pipeline, in the same round trip, so the run still closes right
  // after its terminal phase shows and promoting the freight again finds it closed.
  await Promise.all([
    CancellationScope.nonCancellable(async () => {
      try {
        await getExternalWorkflowHandle(input.pipelineWorkflowId).signal(promotionFinishedSignal, finished);
      } catch (err) {
        log.warn('could not tell the pipeline workflow that this promotion finished', { error: failureMessage(err) });
      }
    }),
    CancellationScope.nonCancellable(() => events.started()),
  ]);
  if (reportBeforeTerminalPhase && ending) setPhase(ending);

  await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
  if (status.phase !== 'Succeeded') {
    // Failed, rejected and aborted promotions close as failed workflows, so the Temporal UI shows them as such;
    // the status query still answers on the closed workflow.
    throw ApplicationFailure.create({ message: status.error ?? status.phase, type: status.phase, nonRetryable: true });
  }
  return status;
}
