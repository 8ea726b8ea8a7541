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

describe('approval and abort rules in roles (decisions from the HTTP API carry the roles on the stage)', () => {
  const withGate = (approval: Record<string, unknown>): PromotionStatus => {
    const status = newPromotionStatus(
      input({
        stage: { ...input().stage, approval: { required: 1, approvers: ['alice', 'bob', 'carol'], ...approval } },
      } as Partial<PromotionInput>),
      'promotion/guestbook/prod/abcdef123456',
      AT,
      true,
    );
    status.phase = 'AwaitingApproval';
    return status;
  };

  it('an approver on the list approves; without role approver the list alone is not enough', () => {
    const status = awaiting();
    assert.equal(approvalRefusal(status, { user: 'alice', roles: ['viewer', 'approver'] }), undefined);
    const refused = approvalRefusal(status, { user: 'alice', roles: ['viewer', 'promoter'] });
    assert.equal(refused?.type, 'Forbidden');
    assert.equal(
      refused?.message,
      'user "alice" needs role approver on guestbook/prod to approve promotion promotion/guestbook/prod/abcdef123456',
    );
  });

  it('role approver (even admin) does not make someone off the approvers list an approver', () => {
    const refused = approvalRefusal(awaiting(), { user: 'dave', roles: ['viewer', 'promoter', 'approver', 'admin'] });
    assert.equal(refused?.type, 'Forbidden');
    assert.match(refused?.message ?? '', /"dave" is not an approver of stage "prod" \(approvers: alice, bob\)/);
  });

  it('allowSelfApproval: false refuses the requester, names the field, and leaves others and rejection alone', () => {
    const status = withGate({ allowSelfApproval: false });
    assert.deepEqual(status.approval, { required: 1, approvers: ['alice', 'bob', 'carol'], allowSelfApproval: false });
    const own = approvalRefusal(status, { user: 'carol', roles: ['viewer', 'approver'] });
    assert.equal(own?.type, 'Forbidden');
    assert.match(own?.message ?? '', /requested promotion .* may not approve it: .*approval\.allowSelfApproval: false/);
    assert.equal(approvalRefusal(status, { user: 'carol' }, 'approve')?.type, 'Forbidden', 'also without roles');
    assert.equal(approvalRefusal(status, { user: 'carol', roles: ['approver'] }, 'reject'), undefined);
    assert.equal(approvalRefusal(status, { user: 'alice', roles: ['approver'] }), undefined);
  });

  it('by default (no allowSelfApproval) the requester may approve, and the status reads as before', () => {
    const status = withGate({});
    assert.deepEqual(status.approval, { required: 1, approvers: ['alice', 'bob', 'carol'] });
    assert.equal(approvalRefusal(status, { user: 'carol', roles: ['approver'] }), undefined);
  });

  it('abort: the requester needs role promoter; an approver needs the role and the list; an admin always may', () => {
    const status = awaiting(); // requested by carol; approvers alice, bob
    assert.equal(abortRefusal(status, { user: 'carol', roles: ['viewer', 'promoter'] }), undefined);
    const viewer = abortRefusal(status, { user: 'carol', roles: ['viewer'] });
    assert.equal(viewer?.type, 'Forbidden');
    assert.match(
      viewer?.message ?? '',
      /only its requester \(carol\) with role promoter, the approvers of stage "prod" \(alice, bob\) with role approver or an admin may/,
    );
    assert.equal(abortRefusal(status, { user: 'bob', roles: ['viewer', 'approver'] }), undefined);
    assert.equal(abortRefusal(status, { user: 'bob', roles: ['viewer', 'promoter'] })?.type, 'Forbidden');
    assert.equal(abortRefusal(status, { user: 'dave', roles: ['viewer', 'approver'] })?.type, 'Forbidden');
    assert.equal(abortRefusal(status, { user: 'dave', roles: ['admin'] }), undefined);
    assert.equal(
      abortRefusal(status, { user: 'dave', admin: true, roles: ['viewer'] })?.type,
      'Forbidden',
      'roles decide',
    );
  });

  it('abort on a stage without a gate: role approver on the stage is enough; an automatic promotion has no requester', () => {
    const status = newPromotionStatus(
      input({ requestedBy: AUTO_PROMOTER }, false),
      'promotion/guestbook/prod/x',
      AT,
      true,
    );
    assert.equal(abortRefusal(status, { user: 'erin', roles: ['viewer', 'approver'] }), undefined);
    const refused = abortRefusal(status, { user: AUTO_PROMOTER, roles: ['promoter'] });
    assert.equal(refused?.type, 'Forbidden');
    assert.match(refused?.message ?? '', /only a user with role approver on guestbook\/prod or an admin may/);
  });

  it('decisions without roles (recorded before roles) keep the earlier rule: list, requester, admin flag', () => {
    const status = awaiting();
    assert.equal(abortRefusal(status, { user: 'carol' }), undefined);
    assert.equal(abortRefusal(status, { user: 'bob' }), undefined);
    assert.equal(abortRefusal(status, { user: 'dave', admin: true }), undefined);
    assert.equal(abortRefusal(status, { user: 'dave' })?.type, 'Forbidden');
    assert.equal(approvalRefusal(status, { user: 'alice' }), undefined);
  });
});
