// Promotion workflow: one freight into one stage.
//   approval gate → wait for the stage lock → render and push → sync Argo CD → wait healthy at that revision.
// Deterministic code only: all I/O happens in activities, which this file knows by type alone.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  TemporalFailure,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import {
  abortUpdate,
  approveSignal,
  approveUpdate,
  promotionFinishedSignal,
  promotionStatusQuery,
  RefusalType,
  refusal,
  rejectUpdate,
  stageGrantedSignal,
  stageLockRequestedSignal,
  TERMINAL_PHASES,
  type Approval,
  type Decision,
  type PromotionInput,
  type PromotionPhase,
  type PromotionStatus,
  type PromotionStep,
  type StepName,
} from './messages';
import { FerryPhase } from './search-attributes';

const git = proxyActivities<FerryActivities>({
  // Above the git step's own 10-minute network timeout, so a slow first clone can finish; the heartbeat timeout
  // still notices a dead worker within a minute.
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

const argoSync = proxyActivities<FerryActivities>({
  startToCloseTimeout: '3 minutes',
  heartbeatTimeout: '20s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

/** Parses the stage's `argocd.timeout` (validated at the edge as `\d+(ms|s|m|h)`). */
export function durationMs(text: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!match) throw ApplicationFailure.nonRetryable(`invalid duration "${text}"`, RefusalType.InvalidArgument);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}

/**
 * Why an approval (or, with `reject`, a rejection) is refused, or undefined when it is allowed. Shared by the
 * update validators and the approval signal.
 */
export function approvalRefusal(
  status: PromotionStatus,
  decision: Decision,
  action: 'approve' | 'reject' = 'approve',
): ApplicationFailure | undefined {
  if (status.phase !== 'AwaitingApproval') {
    const hint = action === 'reject' ? '; use abort to stop it' : '';
    return refusal(
      RefusalType.Conflict,
      `promotion ${status.id} is not awaiting approval (phase: ${status.phase})${hint}`,
    );
  }
  const approvers = status.approval?.approvers ?? [];
  if (!approvers.includes(decision.user)) {
    const may = action === 'reject' ? ' and may not reject' : '';
    return refusal(
      RefusalType.Forbidden,
      `user "${decision.user}" is not an approver of stage "${status.stage}"${may} (approvers: ${approvers.join(', ')})`,
    );
  }
  if (action === 'approve' && status.approvals.some((a) => a.user === decision.user)) {
    return refusal(RefusalType.Conflict, `user "${decision.user}" already approved promotion ${status.id}`);
  }
  return undefined;
}

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure || err instanceof ChildWorkflowFailure) {
    return failureMessage(err.cause ?? err);
  }
  if (err instanceof TemporalFailure || err instanceof Error) return err.message;
  return String(err);
}

export async function promotionWorkflow(input: PromotionInput): Promise<PromotionStatus> {
  const { workflowId, runId } = workflowInfo();
  const now = (): string => new Date().toISOString();
  const { stage, freight } = input;

  const stepNames: StepName[] = [
    ...(stage.approval ? (['approval'] as const) : []),
    'queue',
    'render',
    ...(stage.argocd ? (['sync', 'health'] as const) : []),
  ];
  const status: PromotionStatus = {
    id: workflowId,
    pipeline: input.pipeline,
    stage: stage.name,
    freight,
    phase: 'Pending',
    steps: stepNames.map((name): PromotionStep => ({ name, status: 'Pending' })),
    ...(stage.approval ? { approval: { required: stage.approval.required, approvers: stage.approval.approvers } } : {}),
    approvals: [],
    requestedBy: input.requestedBy,
    startedAt: now(),
  };

  const versions = Object.entries(freight.artifacts)
    .map(([name, version]) => `${name}:${version}`)
    .join(', ');

  const showDetails = (): void => {
    const lines = [
      `**${status.phase}** — ${input.pipeline}/${stage.name} ← freight \`${freight.id}\` (${versions})`,
      '',
      ...status.steps.map((s) => `- ${s.name}: ${s.status}${s.message ? ` — ${s.message}` : ''}`),
    ];
    if (status.commit) lines.push('', `commit \`${status.commit}\` on \`${stage.render.to}\``);
    if (status.error) lines.push('', `error: ${status.error}`);
    setCurrentDetails(lines.join('\n'));
  };

  const setPhase = (phase: PromotionPhase): void => {
    status.phase = phase;
    upsertSearchAttributes([{ key: FerryPhase, value: phase }]);
    showDetails();
  };

  const step = (name: StepName): PromotionStep => {
    const found = status.steps.find((s) => s.name === name);
    if (!found) throw new Error(`no step ${name}`); // unreachable: steps are derived from the stage
    return found;
  };
  const startStep = (name: StepName, message?: string): void => {
    const s = step(name);
    s.status = 'Running';
    s.startedAt = now();
    if (message) s.message = message;
    showDetails();
  };
  const endStep = (
    name: StepName,
    result: 'Succeeded' | 'Failed' | 'Cancelled' | 'Skipped',
    message?: string,
  ): void => {
    const s = step(name);
    s.status = result;
    s.finishedAt = now();
    if (message !== undefined) s.message = message;
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

  // --- message handlers: registered before the first await so no update is ever refused for want of a handler
  let granted = false;
  const scope = new CancellationScope();

  setHandler(promotionStatusQuery, () => status);

  /** Who decided, when, and why: the record kept for approvals, rejections and aborts. */
  const record = (decision: Decision): Approval => ({
    user: decision.user,
    at: now(),
    ...(decision.comment ? { comment: decision.comment } : {}),
  });
  const recordApproval = (decision: Decision): void => {
    status.approvals.push(record(decision));
    showDetails();
  };
  setHandler(
    approveUpdate,
    (decision) => {
      recordApproval(decision);
      return status;
    },
    {
      validator: (decision) => {
        const refused = approvalRefusal(status, decision);
        if (refused) throw refused;
      },
      description: 'Approve the promotion; refused at once when the user is not an approver or it is not awaited.',
    },
  );
  setHandler(approveSignal, (decision) => {
    const refused = approvalRefusal(status, decision);
    if (refused) log.warn('approval signal ignored', { reason: refused.message });
    else recordApproval(decision);
  });
  setHandler(
    rejectUpdate,
    (decision) => {
      status.rejectedBy = record(decision);
      scope.cancel();
      return status;
    },
    {
      validator: (decision) => {
        const refused = approvalRefusal(status, decision, 'reject');
        if (refused) throw refused;
      },
      description: 'Reject the promotion while it awaits approval; it fails with phase Rejected.',
    },
  );
  setHandler(
    abortUpdate,
    (decision) => {
      status.abortedBy = record(decision);
      scope.cancel();
      return status;
    },
    {
      validator: (_decision) => {
        if (ending || TERMINAL_PHASES.includes(status.phase) || status.abortedBy || status.rejectedBy) {
          throw refusal(
            RefusalType.Conflict,
            `promotion ${status.id} has already finished (phase: ${ending ?? status.phase})`,
          );
        }
      },
      description: 'Abort the promotion at any step; running activities are cancelled.',
    },
  );
  setHandler(stageGrantedSignal, () => {
    granted = true;
  });

  showDetails();

  try {
    await scope.run(async () => {
      if (stage.approval) {
        setPhase('AwaitingApproval');
        startStep('approval', `needs ${stage.approval.required} of ${stage.approval.approvers.join(', ')}`);
        const required = stage.approval.required;
        await condition(() => status.approvals.length >= required);
        endStep('approval', 'Succeeded', `approved by ${status.approvals.map((a) => a.user).join(', ')}`);
      }

      setPhase('Queued');
      startStep('queue', `waiting for stage ${stage.name}`);
      await getExternalWorkflowHandle(input.pipelineWorkflowId).signal(stageLockRequestedSignal, {
        id: workflowId,
        runId,
        stage: stage.name,
      });
      await condition(() => granted);
      endStep('queue', 'Succeeded', `stage ${stage.name} is ours`);

      setPhase('Rendering');
      startStep('render', `rendering ${stage.render.from} into ${stage.render.to}`);
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
      status.commit = written.commit;
      status.sourceCommit = written.sourceCommit;
      endStep(
        'render',
        'Succeeded',
        written.created
          ? `pushed ${written.commit.slice(0, 12)} to ${stage.render.to} (${written.files} file${written.files === 1 ? '' : 's'})`
          : `${stage.render.to} already at ${written.commit.slice(0, 12)}; no new commit`,
      );

      if (stage.argocd) {
        const timeoutMs = durationMs(stage.argocd.timeout);
        const ref = {
          argocd: stage.argocd,
          revision: written.commit,
          branch: stage.render.to,
          repoUrl: input.repo.url,
          tag: `${workflowId}/${runId}`,
        };
        setPhase('Syncing');
        startStep('sync', `syncing ${stage.argocd.app} to ${written.commit.slice(0, 12)}`);
        const synced = await argoSync.syncArgoApp(ref);
        endStep(
          'sync',
          'Succeeded',
          synced.automated ? `auto-sync app ${stage.argocd.app}; refreshed` : `sync of ${stage.argocd.app} requested`,
        );

        setPhase('WaitingHealthy');
        startStep(
          'health',
          `waiting for ${stage.argocd.app} to be Synced and Healthy at ${written.commit.slice(0, 12)}`,
        );
        const health = proxyActivities<FerryActivities>({
          startToCloseTimeout: timeoutMs + 120_000,
          heartbeatTimeout: '10s',
          retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '15s', maximumAttempts: 20 },
        });
        const healthy = await health.waitArgoAppHealthy({ ...ref, timeoutMs });
        endStep(
          'health',
          'Succeeded',
          `Synced and Healthy at ${healthy.revision.slice(0, 12)} after ${Math.round(healthy.waitedMs / 1000)}s`,
        );
      }
      finish('Succeeded');
    });
  } catch (err) {
    const running = status.steps.find((s) => s.status === 'Running');
    if (isCancellation(err) || status.rejectedBy || status.abortedBy) {
      if (status.rejectedBy) {
        status.error = `rejected by ${status.rejectedBy.user}${status.rejectedBy.comment ? `: ${status.rejectedBy.comment}` : ''}`;
        if (running) endStep(running.name, 'Failed', status.error);
        finish('Rejected');
      } else {
        const by = status.abortedBy ? `aborted by ${status.abortedBy.user}` : 'cancelled';
        status.error = `${by}${status.abortedBy?.comment ? `: ${status.abortedBy.comment}` : ''}`;
        if (running) endStep(running.name, 'Cancelled', status.error);
        finish('Aborted');
      }
    } else {
      status.error = failureMessage(err);
      if (running) endStep(running.name, 'Failed', status.error);
      finish('Failed');
    }
  } finally {
    const finishedAt = now();
    status.finishedAt = finishedAt;
    for (const s of status.steps) if (s.status === 'Pending') s.status = 'Skipped';
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
    };
    await CancellationScope.nonCancellable(async () => {
      try {
        await getExternalWorkflowHandle(input.pipelineWorkflowId).signal(promotionFinishedSignal, finished);
      } catch (err) {
        log.warn('could not tell the pipeline workflow that this promotion finished', { error: failureMessage(err) });
      }
    });
    if (reportBeforeTerminalPhase && ending) setPhase(ending);
  }

  await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
  if (status.phase !== 'Succeeded') {
    // Failed, rejected and aborted promotions close as failed workflows, so the Temporal UI shows them as such;
    // the status query still answers on the closed workflow.
    throw ApplicationFailure.create({ message: status.error ?? status.phase, type: status.phase, nonRetryable: true });
  }
  return status;
}
