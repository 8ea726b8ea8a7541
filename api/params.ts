// Path parameters several routers read the same way.
import type { Request } from 'express';
import { FerryError } from '../client/errors';

/**
 * The promotion id of a `/promotions/*id/…` route. Promotion ids are workflow ids with slashes
 * (`promotion/<pipeline>/<stage>/<freight>`). They arrive URL-encoded as one segment, or raw as several; the `*id`
 * wildcard gives the decoded segments either way.
 */
export function promotionIdParam(req: Request): string {
  const raw = (req.params as Record<string, string | string[] | undefined>).id;
  const id = Array.isArray(raw) ? raw.join('/') : (raw ?? '');
  if (id === '') throw new FerryError('InvalidArgument', 'missing promotion id');
  return id;
}
