// The promotion's core without a server: the approval rules (final decisions, who may abort) and failure messages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, RetryState } from '@temporalio/common';
import { AUTO_PROMOTER } from '../../pipeline/ids';
import type { PromotionInput, PromotionStatus } from '../../workflows/messages';
import {
  abortRefusal,
  approvalRefusal,
  failureMessage,
  failureReason,
  newPromotionStatus,
  recordOf,
  settle,
  startStep,
} from '../../workflows/promotion-core';

const AT = '2026-01-01T00:00:00.000Z';

function input(overrides: Partial<PromotionInput> = {}, approval = true): PromotionInput {
  return {
    pipeline: 'guestbook',
    stage: {
      name: 'prod',
      after: [],
      promotion: 'manual',
      render: { strategy: 'branch', engine: 'plain', from: 'apps/prod', to: 'env/prod' },
      ...(approval ? { approval: { required: 1, approvers: ['alice', 'bob'] } } : {}),
    } as PromotionInput['stage'],
    repo: { url: 'file:///tmp/x.git', branch: 'main' } as PromotionInput['repo'],
    artifacts: [],
    freight: { id: 'abcdef123456', artifacts: { guestbook: '1.0.0' } },
    requestedBy: 'carol',
    pipelineWorkflowId: 'pipeline/guestbook',
    ...overrides,
  };
}

function awaiting(overrides: Partial<PromotionInput> = {}): PromotionStatus {
  const status = newPromotionStatus(input(overrides), 'promotion/guestbook/prod/abcdef123456', AT, true);
  status.phase = 'AwaitingApproval';
  startStep(status, 'approval', AT);
  return status;
}

describe('approval rules: a decision that ends the gate is final', () => {
  it('refuses an approval after a rejection, naming the rejection', () => {
    const status = awaiting();
    status.rejectedBy = recordOf({ user: 'bob' }, AT);
    const refused = approvalRefusal(status, { user: 'alice' });
    assert.equal(refused?.type, 'Conflict');
    assert.match(refused?.message ?? '', /rejected by bob/);
  });

  it('refuses a rejection after the required approvals closed the gate (the phase has not moved yet)', () => {
    const status = awaiting();
    status.approvals.push(recordOf({ user: 'alice' }, AT));
    const refused = approvalRefusal(status, { user: 'bob' }, 'reject');
    assert.equal(refused?.type, 'Conflict');
    assert.match(refused?.message ?? '', /approval gate is closed: approved by alice/);
    assert.equal(approvalRefusal(status, { user: 'bob' })?.type, 'Conflict', 'a second approval too');
  });

  it('refuses an approval after an abort and once the promotion is ending', () => {
    const aborted = awaiting();
    aborted.abortedBy = recordOf({ user: 'carol' }, AT);
    assert.match(approvalRefusal(aborted, { user: 'alice' })?.message ?? '', /aborted by carol/);
    assert.match(approvalRefusal(awaiting(), { user: 'alice' }, 'approve', 'Failed')?.message ?? '', /finished/);
  });

  it('still takes an approver’s first decision, and refuses a non-approver with the list of approvers', () => {
    assert.equal(approvalRefusal(awaiting(), { user: 'alice' }), undefined);
    assert.equal(approvalRefusal(awaiting(), { user: 'alice' }, 'reject'), undefined);
    const refused = approvalRefusal(awaiting(), { user: 'mallory' });
    assert.equal(refused?.type, 'Forbidden');
    assert.match(refused?.message ?? '', /approvers: alice, bob/);
  });
});

describe('who may abort: the requester, the stage approvers, an admin', () => {
  it('lets the requester, an approver and an admin abort', () => {
    for (const decision of [{ user: 'carol' }, { user: 'bob' }, { user: 'root', admin: true }])
      assert.equal(abortRefusal(awaiting(), decision), undefined, decision.user);
  });

  it('refuses anyone else with a Forbidden that says who may', () => {
    const refused = abortRefusal(awaiting(), { user: 'mallory' });
    assert.equal(refused?.type, 'Forbidden');
    assert.equal(
      refused?.message,
      'user "mallory" may not abort promotion promotion/guestbook/prod/abcdef123456: only its requester (carol), ' +
        'the approvers of stage "prod" (alice, bob) or an admin may',
    );
  });

  it('does not count the system as a requester: an automatic promotion is aborted by approvers or admins', () => {
    const status = awaiting({ requestedBy: AUTO_PROMOTER });
    assert.equal(abortRefusal(status, { user: AUTO_PROMOTER })?.type, 'Forbidden');
    assert.equal(abortRefusal(status, { user: 'alice' }), undefined);
  });

  it('refuses an abort after a rejection as a conflict naming it', () => {
    const status = awaiting();
    status.rejectedBy = recordOf({ user: 'alice' }, AT);
    const refused = abortRefusal(status, { user: 'carol' });
    assert.equal(refused?.type, 'Conflict');
    assert.match(refused?.message ?? '', /rejected by alice/);
  });
});

describe('failures: message and reason', () => {
  it('ends on a failure without a cause (it used to recurse forever)', () => {
    const failure = new ActivityFailure(
      'activity failed',
      'renderAndPush',
      '1',
      RetryState.MAXIMUM_ATTEMPTS_REACHED,
      undefined,
    );
    assert.equal(failureMessage(failure), 'activity failed');
    assert.equal(failureReason(failure), 'Failed');
    const child = new ChildWorkflowFailure(
      'default',
      { workflowId: 'promotion/x/y/z' },
      'promotionWorkflow',
      RetryState.NON_RETRYABLE_FAILURE,
    );
    assert.equal(failureMessage(child), 'Child Workflow execution failed');
  });

  it('gives the innermost message and its type as the reason', () => {
    const cause = ApplicationFailure.nonRetryable('Argo CD app guestbook-prod does not exist', 'ArgoAppNotFound');
    const failure = new ActivityFailure(
      'activity failed',
      'preflightPromotion',
      '1',
      RetryState.NON_RETRYABLE_FAILURE,
      undefined,
      cause,
    );
    assert.equal(failureMessage(failure), 'Argo CD app guestbook-prod does not exist');
    assert.equal(failureReason(failure), 'ArgoAppNotFound');
  });

  it('settles a failed promotion: error and reason on the status and on the running step, the rest skipped', () => {
    const status = awaiting();
    status.approvals.push(recordOf({ user: 'alice' }, AT));
    status.steps[0].status = 'Succeeded';
    startStep(status, 'preflight', AT);
    const phase = settle(
      status,
      ApplicationFailure.nonRetryable('no credential "gitops"', 'CredentialMissing'),
      false,
      AT,
    );
    assert.equal(phase, 'Failed');
    assert.equal(status.reason, 'CredentialMissing');
    const preflight = status.steps.find((s) => s.name === 'preflight');
    assert.deepEqual([preflight?.status, preflight?.reason], ['Failed', 'CredentialMissing']);
    assert.equal(status.steps.find((s) => s.name === 'render')?.status, 'Skipped');
  });
});
