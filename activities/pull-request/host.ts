// One REST request to a git host, as the providers make it: over the shared HTTP layer (activities/notify/http.ts),
// with the host's auth header, and with one reading of what a refusal means. A message names the host, the
// repository, the request and what to check; it never holds the token (headers never reach a message, and the
// host's own words are passed through `redact`). Pagination follows the host's `Link: <…>; rel="next"` (and
// GitLab's X-Next-Page), only to the API's own origin, so the token never goes to another host.
import { ApplicationFailure } from '@temporalio/common';
import { classifyAnswer, excerpt, httpCall, nextRetryDelayFor, type HttpAnswer, type HttpCall } from '../notify/http';
import { PullRequestFailure, type ProviderConfig } from './types';

export type HostName = 'GitHub' | 'GitLab' | 'Gitea';

export interface HostClient {
  /** `GitHub api.github.com repository org/gitops`: for messages. */
  readonly where: string;
  /** A request to `path` (relative to the API base, or an absolute URL on the API's origin). */
  request<T>(
    method: HttpCall['method'],
    path: string,
    body?: unknown,
    options?: { allow?: number[] },
  ): Promise<HostAnswer<T>>;
  /** Every item of a paginated list, following the host's next-page links. */
  list<T>(path: string): Promise<T[]>;
}

export interface HostAnswer<T> {
  status: number;
  headers: Headers;
  json: T;
  text: string;
}

export interface HostClientOptions {
  host: HostName;
  config: ProviderConfig;
  /** The header that carries the token. */
  auth: Record<string, string>;
  /** Extra headers on every request (GitHub's Accept and API version). */
  headers?: Record<string, string>;
  /** What a refused token needs, in words: scopes, role. */
  tokenAdvice: string;
}

/** Largest number of pages read from one list: a runaway pagination (or a host that loops) stops here. */
const MAX_PAGES = 50;

export function createHostClient(options: HostClientOptions): HostClient {
  const { host, config } = options;
  const api = config.api.replace(/\/+$/, '');
  const origin = new URL(api).origin;
  const redact = config.redact ?? ((text: string) => text);
  const where = `${config.context ? `${config.context}: ` : ''}${host} ${new URL(api).host} repository ${config.repository}`;

  const urlOf = (path: string): string => (/^https?:\/\//.test(path) ? path : `${api}${path}`);
  /** The request as a message shows it: the path below the API base, without its query. */
  const shown = (url: string): string =>
    (url.startsWith(api) ? url.slice(api.length) : new URL(url).pathname).split('?')[0];

  const failure = (method: string, url: string, answer: HttpAnswer): ApplicationFailure => {
    const said = hostMessage(answer.text);
    const message = `${where}: ${method} ${shown(url)} answered ${answer.status}${said ? ` (${redact(said)})` : ''}`;
    const { kind, wait } = classifyAnswer(answer);
    switch (kind) {
      case 'rate-limited':
        return ApplicationFailure.create({
          message: `${message}; rate limited, retrying${wait !== undefined ? ` in ${Math.ceil(wait / 1000)}s` : ''}`,
          type: PullRequestFailure.RateLimited,
          ...nextRetryDelayFor(wait),
        });
      case 'server-error':
        return ApplicationFailure.create({ message, type: PullRequestFailure.HostError, ...nextRetryDelayFor(wait) });
      case 'unauthorized':
        return ApplicationFailure.nonRetryable(
          `${message}: ${host} refused the token of credential "${config.credential}"; check that it is valid, ` +
            `not expired, and ${options.tokenAdvice}`,
          PullRequestFailure.Unauthorized,
        );
      case 'not-found':
        return ApplicationFailure.nonRetryable(
          `${message}: ${host} does not know it; check the repository (from spec.repo.url), the API URL ` +
            `(render.pullRequest.api), and that the token of credential "${config.credential}" can see the repository`,
          PullRequestFailure.NotFound,
        );
      default:
        return ApplicationFailure.nonRetryable(message, PullRequestFailure.Refused);
    }
  };

  const request = async <T>(
    method: HttpCall['method'],
    path: string,
    body?: unknown,
    requestOptions: { allow?: number[] } = {},
  ): Promise<HostAnswer<T>> => {
    const url = urlOf(path);
    if (new URL(url).origin !== origin) {
      // A next-page link to another host: following it would hand that host the token.
      throw ApplicationFailure.nonRetryable(
        `${where}: the host pointed to ${new URL(url).origin}, which is not the API's origin ${origin}; not followed`,
        PullRequestFailure.Refused,
      );
    }
    const answer = await httpCall({
      method,
      url,
      headers: {
        'User-Agent': config.userAgent ?? 'ferry-pull-request/1',
        Accept: 'application/json',
        ...options.headers,
        ...options.auth,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      where: `${where}: ${shown(url)}`,
      timeoutMs: config.timeoutMs,
      unreachableType: PullRequestFailure.Unreachable,
    });
    const ok = answer.status >= 200 && answer.status < 300;
    if (!ok && !(requestOptions.allow ?? []).includes(answer.status)) throw failure(method, url, answer);
    let json: unknown;
    if (answer.text.trim() !== '') {
      try {
        json = JSON.parse(answer.text);
      } catch {
        if (ok) {
          throw ApplicationFailure.retryable(
            `${where}: ${method} ${shown(url)} answered ${answer.status} with a body that is not JSON ` +
              `(${redact(excerpt(answer.text, 120))}); is ${api} the REST API (render.pullRequest.api)?`,
            PullRequestFailure.HostError,
          );
        }
      }
    }
    return { status: answer.status, headers: answer.headers, json: json as T, text: answer.text };
  };

  const list = async <T>(path: string): Promise<T[]> => {
    const items: T[] = [];
    let next: string | undefined = path;
    for (let page = 0; next !== undefined; page++) {
      if (page === MAX_PAGES) {
        throw ApplicationFailure.nonRetryable(
          `${where}: GET ${shown(urlOf(path))} has more than ${MAX_PAGES} pages; stopped reading`,
          PullRequestFailure.Refused,
        );
      }
      const answer: HostAnswer<T[]> = await request<T[]>('GET', next);
      if (!Array.isArray(answer.json)) {
        throw ApplicationFailure.nonRetryable(
          `${where}: GET ${shown(urlOf(next))} did not answer a list`,
          PullRequestFailure.Refused,
        );
      }
      items.push(...answer.json);
      next = nextPage(urlOf(next), answer.headers);
    }
    return items;
  };

  return { where, request, list };
}

/** The next page of a list: the Link header's rel="next", else GitLab's X-Next-Page on the same URL. */
export function nextPage(current: string, headers: Headers): string | undefined {
  const link = headers.get('link');
  if (link) {
    for (const part of link.split(',')) {
      const match = /<([^>]+)>\s*;(.*)/.exec(part.trim());
      if (match && /\brel="?([^"]*\s)?next(\s[^"]*)?"?/.test(match[2])) return new URL(match[1], current).toString();
    }
  }
  const page = headers.get('x-next-page');
  if (page && /^\d+$/.test(page.trim())) {
    const url = new URL(current);
    url.searchParams.set('page', page.trim());
    return url.toString();
  }
  return undefined;
}

/**
 * The host's own explanation in an error body, on one line: GitHub and Gitea `{message, errors}`, GitLab
 * `{message: string | string[] | {field: [..]}}` or `{error}`; else an excerpt of the text.
 */
export function hostMessage(text: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return excerpt(text, 200);
  }
  if (typeof parsed !== 'object' || parsed === null) return excerpt(text, 200);
  const body = parsed as { message?: unknown; errors?: unknown; error?: unknown; error_description?: unknown };
  const parts: string[] = [];
  const add = (value: unknown, prefix = ''): void => {
    if (typeof value === 'string') parts.push(prefix + value);
    else if (Array.isArray(value)) value.forEach((v) => add(v, prefix));
    else if (typeof value === 'object' && value !== null) {
      const fields = value as Record<string, unknown>;
      if (typeof fields.message === 'string') parts.push(prefix + fields.message);
      else if (typeof fields.field === 'string' || typeof fields.code === 'string')
        parts.push(`${prefix}${[fields.field, fields.code].filter((f) => typeof f === 'string').join(' ')}`);
      else for (const [key, v] of Object.entries(fields)) add(v, `${key} `);
    }
  };
  add(body.message);
  add(body.errors);
  add(body.error);
  add(body.error_description);
  return excerpt(parts.join('; '), 300);
}
