// Pagination as the hosts answer it: `page` and `per_page` in the query, and a `Link` header with rel next, prev,
// first and last (RFC 8288); GitLab adds X-Page, X-Per-Page, X-Next-Page, X-Prev-Page, X-Total and X-Total-Pages.
export interface Page<T> {
  items: T[];
  headers: Record<string, string>;
}

export function paginate<T>(
  items: T[],
  request: URL,
  options: {
    /** Origin and path the links point at (default: the request's); GitHub often links to /repositories/{id}/…. */
    linkBase: string;
    defaultPerPage: number;
    maxPerPage: number;
    style: 'github' | 'gitlab';
  },
): Page<T> {
  const perPageParam = Number(request.searchParams.get('per_page') ?? options.defaultPerPage);
  const perPage = Math.min(
    Math.max(Number.isFinite(perPageParam) && perPageParam > 0 ? perPageParam : options.defaultPerPage, 1),
    options.maxPerPage,
  );
  const pageParam = Number(request.searchParams.get('page') ?? 1);
  const page = Number.isInteger(pageParam) && pageParam > 0 ? pageParam : 1;
  const lastPage = Math.max(Math.ceil(items.length / perPage), 1);
  const link = (n: number): string => {
    const params = new URLSearchParams(request.searchParams);
    params.set('per_page', String(perPage));
    params.set('page', String(n));
    return `${options.linkBase}?${params}`;
  };
  const rels: string[] = [];
  if (page < lastPage) rels.push(`<${link(page + 1)}>; rel="next"`);
  if (page > 1) rels.push(`<${link(page - 1)}>; rel="prev"`);
  if (options.style === 'gitlab' || page > 1) rels.push(`<${link(1)}>; rel="first"`);
  if (options.style === 'gitlab' || page < lastPage) rels.push(`<${link(lastPage)}>; rel="last"`);
  const headers: Record<string, string> = rels.length > 0 ? { link: rels.join(', ') } : {};
  if (options.style === 'gitlab') {
    Object.assign(headers, {
      'x-page': String(page),
      'x-per-page': String(perPage),
      'x-next-page': page < lastPage ? String(page + 1) : '',
      'x-prev-page': page > 1 ? String(page - 1) : '',
      'x-total': String(items.length),
      'x-total-pages': String(lastPage),
    });
  }
  return { items: items.slice((page - 1) * perPage, page * perPage), headers };
}
