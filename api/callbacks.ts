// Callback gates over HTTP. Two routes:
//
// - `POST /api/v1/callbacks/<token>` `{"result": "pass"|"fail", "reason": "…", "by"?: "…"}`: an external system
//   decides a waiting callback gate. It takes no bearer token: the one-time token in the path is the credential
//   (client/gate-callbacks.ts), checked in constant time before anything else happens. A token that is not one
//   Ferry made is a 401 and reaches no workflow; a gate that is not waiting (already decided, not reached yet, or
//   its run ended) is a 409, so the URL works once. The request log shows the path with the token replaced.
// - `GET /api/v1/promotions/{id}/gates/{gate}/callback-url` (bearer token, admins only): the URL of a callback gate
//   that is waiting now, for when no event subscriber carries it. Never part of the promotion's status.
import express, { type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { specErrorsFromZod } from '../pipeline/load';
import { FerryError } from '../client/errors';
import { callbackUrlFor, CALLBACK_KEY_ENV, MAX_TOKEN_LENGTH, verifyCallbackToken } from '../client/gate-callbacks';
import type { FerryApi } from '../client/types';
import { promotionIdParam } from './params';

export interface CallbackRoutesOptions {
  ferry: FerryApi;
  /** FERRY_CALLBACK_KEY, shared with the worker; without it the routes answer 503 and say what to set. */
  key: Buffer | undefined;
}

const CALLBACK_BODY_LIMIT = '16kb';

export const CallbackBody = z
  .object({
    result: z.enum(['pass', 'fail'], {
      error: (issue) => (issue.input === undefined ? 'is required: "pass" or "fail"' : 'must be "pass" or "fail"'),
    }),
    reason: z.string({ error: 'must be a string' }).max(4096, 'must be at most 4096 characters').optional(),
    by: z
      .string({ error: 'must be a string' })
      .min(1, 'must not be empty')
      .max(200, 'must be at most 200 characters')
      .optional(),
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.result === 'fail' && !body.reason?.trim())
      ctx.addIssue({ code: 'custom', path: ['reason'], message: 'is required when result is "fail": say why' });
  });

function notConfigured(): FerryError {
  return new FerryError(
    'Unavailable',
    `callback gates are not configured on this API: set ${CALLBACK_KEY_ENV} (the same key as the worker's)`,
  );
}

function parseCallbackBody(req: Request): z.output<typeof CallbackBody> {
  const text = typeof req.body === 'string' ? req.body : '';
  if (text.trim() === '') {
    throw new FerryError('InvalidArgument', 'request body is empty: send {"result": "pass"|"fail", "reason": "…"}');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new FerryError(
      'InvalidArgument',
      `request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FerryError('InvalidArgument', 'request body must be a JSON object');
  }
  const result = CallbackBody.safeParse(value);
  if (!result.success) {
    throw new FerryError('InvalidArgument', 'request body is invalid', {
      errors: specErrorsFromZod(result.error, value),
    });
  }
  return result.data;
}

/** `POST /<token>`, mounted at /api/v1/callbacks outside bearer authentication. */
export function callbackRouter(options: CallbackRoutesOptions): Router {
  const router = express.Router();
  router.use(express.text({ type: () => true, limit: CALLBACK_BODY_LIMIT }));
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  router.post('/:token', async (req, res) => {
    if (!options.key) throw notConfigured();
    const token = String(req.params.token ?? '');
    // The token is checked before the body is looked at, so a forged URL learns nothing, not even about the body.
    const ref = token.length <= MAX_TOKEN_LENGTH ? verifyCallbackToken(options.key, token) : undefined;
    if (!ref) {
      throw new FerryError(
        'Unauthenticated',
        'the callback token is not valid: use the URL Ferry issued for the gate (the dev.ferry.gate.waiting event, ' +
          'or `ferry gate url PROMOTION GATE`)',
      );
    }
    const body = parseCallbackBody(req);
    const gate = await options.ferry.decideGate(ref, {
      result: body.result,
      ...(body.reason?.trim() ? { reason: body.reason.trim() } : {}),
      ...(body.by ? { by: body.by } : {}),
    });
    res.json({ promotion: ref.promotionId, gate: gate.name, phase: gate.phase });
  });
  router.all('/:token', () => {
    throw new FerryError('InvalidArgument', 'a callback is a POST with {"result": "pass"|"fail", "reason": "…"}');
  });
  return router;
}

export interface GateUrlRouteOptions extends CallbackRoutesOptions {
  /**
   * Throws Forbidden unless the caller may read the callback URLs of this promotion (role admin on its stage: a
   * callback URL decides a gate).
   */
  authorize: (res: Response, promotionId: string) => void;
  /** The base URL external systems reach this API at (FERRY_PUBLIC_URL, else where it listens). */
  publicUrl: () => string;
}

/** `GET /promotions/*id/gates/:gate/callback-url`, for the authenticated router (before `GET /promotions/*id`). */
export function gateUrlRouter(options: GateUrlRouteOptions): Router {
  const router = express.Router();
  router.get('/promotions/*id/gates/:gate/callback-url', async (req, res) => {
    const id = promotionIdParam(req);
    options.authorize(res, id);
    if (!options.key) throw notConfigured();
    const ref = await options.ferry.waitingGate(id, String(req.params.gate));
    res.json({
      promotion: ref.promotionId,
      gate: ref.gate,
      url: callbackUrlFor(options.key, options.publicUrl(), ref),
    });
  });
  return router;
}
