// Every relative link of README.md, docs/ and examples/ leads somewhere: to a file or directory of the repository
// and, with a `#fragment`, to a heading (or an explicit `<a id>`) of that Markdown file, named as GitHub names it.
// External links (http, https, mailto) are not fetched; links inside code blocks and code spans are not links.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, test } from 'node:test';

const ROOT = resolve(__dirname, '..', '..');

/** README.md, then every Markdown file under docs/ and examples/. */
function markdownFiles(): string[] {
  const under = (dir: string) =>
    readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile() && e.name.endsWith('.md'))
      .map((e) => join(e.parentPath, e.name))
      .sort();
  return [join(ROOT, 'README.md'), ...under('docs'), ...under('examples')];
}

/** The text with fenced code blocks and code spans blanked out (same length and line breaks, so offsets hold). */
function withoutCode(markdown: string): string {
  const lines = markdown.split('\n');
  let fence: { char: string; length: number } | undefined;
  const prose = lines.map((line) => {
    // Fences inside list items are indented; GitHub treats them as fences all the same.
    const marker = /^\s*(`{3,}|~{3,})(.*)$/.exec(line);
    if (fence) {
      if (marker && marker[1][0] === fence.char && marker[1].length >= fence.length && marker[2].trim() === '')
        fence = undefined;
    } else if (marker) {
      fence = { char: marker[1][0], length: marker[1].length };
    } else {
      return line;
    }
    return ' '.repeat(line.length);
  });
  // A code span: a run of backticks, then anything up to the same run (not across a blank line).
  return prose
    .join('\n')
    .replace(/(`+)(?!`)((?:(?!\n\s*\n)[\s\S])*?[^`])\1(?!`)/g, (span) => span.replace(/[^\n]/g, ' '));
}

/** The text GitHub renders for a heading's source: code spans keep their content, links their text, no tags. */
function headingText(source: string): string {
  return source
    .replace(/\s+#+\s*$/, '')
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/(`+)(.+?)\1/g, '$2')
    .replace(/(^|[^\p{L}\p{N}])[*_]+|[*_]+(?=[^\p{L}\p{N}]|$)/gu, '$1')
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .trim();
}

/** GitHub's heading slug: lowercase, punctuation other than - and _ dropped, each space a hyphen. */
function slug(text: string): string {
  return headingText(text)
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a Markdown file: heading slugs (a repeated one gets -1, -2, … as on GitHub) and `<a id/name>`. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const add = (base: string): void => {
    let anchor = base;
    while (anchors.has(anchor)) {
      const count = (seen.get(base) ?? 0) + 1;
      seen.set(base, count);
      anchor = `${base}-${count}`;
    }
    anchors.add(anchor);
  };
  const prose = withoutCode(markdown);
  const lines = prose.split('\n');
  const source = markdown.split('\n');
  lines.forEach((line, i) => {
    const atx = /^ {0,3}#{1,6}(?:\s+(.*))?$/.exec(line);
    if (atx) add(slug(source[i].replace(/^ {0,3}#{1,6}\s*/, '')));
    else if (
      /^ {0,3}(=+|-+)\s*$/.test(line) &&
      i > 0 &&
      lines[i - 1].trim() !== '' &&
      !/^\s*([-*+]|\d+\.)\s/.test(lines[i - 1])
    )
      add(slug(source[i - 1].trim()));
    for (const m of line.matchAll(/<a\s+(?:[^>]*\s)?(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
  });
  return anchors;
}

interface Link {
  line: number;
  target: string;
}

/** The links of a Markdown file outside code: `[text](target)`, images, `[ref]: target` and `href="target"`. */
function linksOf(markdown: string): Link[] {
  const prose = withoutCode(markdown);
  const links: Link[] = [];
  const lineAt = (offset: number) => prose.slice(0, offset).split('\n').length;
  const patterns = [
    /\]\(\s*(<[^>\n]*>|[^)\s]*)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g,
    /^ {0,3}\[[^\]]+\]:\s*(<[^>\n]*>|\S+)/gm,
    /<a\s+(?:[^>]*\s)?href="([^"]*)"/g,
  ];
  for (const pattern of patterns) {
    for (const m of prose.matchAll(pattern)) {
      links.push({ line: lineAt(m.index ?? 0), target: m[1].replace(/^<(.*)>$/, '$1') });
    }
  }
  return links.sort((a, b) => a.line - b.line);
}

const EXTERNAL = /^(https?:|mailto:)/i;

/** Why a link of `file` does not resolve, or undefined when it does. */
function brokenReason(file: string, target: string, anchorsOfFile: (path: string) => Set<string>): string | undefined {
  if (EXTERNAL.test(target)) return undefined;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return 'a link with a scheme other than http(s) or mailto';
  if (target === '') return 'an empty link';
  const hash = target.indexOf('#');
  const pathPart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash)).replace(/\?.*$/, '');
  const fragment = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const path =
    pathPart === '' ? file : pathPart.startsWith('/') ? join(ROOT, pathPart) : resolve(dirname(file), pathPart);
  if (path !== ROOT && !path.startsWith(ROOT + sep)) return `${relative(ROOT, path)} is outside the repository`;
  if (!existsSync(path)) return `${relative(ROOT, path) || '.'} does not exist`;
  if (fragment === undefined) return undefined;
  if (statSync(path).isDirectory()) return `${relative(ROOT, path)} is a directory: it has no #${fragment}`;
  if (path.endsWith('.md')) {
    return anchorsOfFile(path).has(fragment) ? undefined : `${relative(ROOT, path)} has no heading #${fragment}`;
  }
  // Source files: GitHub's line anchors (#L12, #L12-L20).
  const lines = /^L(\d+)(?:-L(\d+))?$/.exec(fragment);
  if (!lines) return `#${fragment} is not a line anchor (#L12) of ${relative(ROOT, path)}`;
  const count = readFileSync(path, 'utf8').split('\n').length;
  const last = Number(lines[2] ?? lines[1]);
  return last <= count ? undefined : `${relative(ROOT, path)} has ${count} lines, not ${last}`;
}

describe('the link checker', () => {
  test("slugs follow GitHub's rules: lowercase, punctuation other than - and _ dropped, spaces to hyphens", () => {
    assert.equal(slug('Search attributes'), 'search-attributes');
    assert.equal(slug('`file://` repositories'), 'file-repositories');
    assert.equal(slug('Who may abort?'), 'who-may-abort');
    assert.equal(slug('Transports and credentials (ssh, https)'), 'transports-and-credentials-ssh-https');
    assert.equal(slug('`FERRY_HOME` and the [tokens](x.md)'), 'ferry_home-and-the-tokens');
    assert.equal(slug('dev → staging → prod'), 'dev--staging--prod');
    assert.equal(slug('**Bold** _emphasis_'), 'bold-emphasis');
    assert.equal(slug('POST /api/v1/pipelines/{name}/freight'), 'post-apiv1pipelinesnamefreight');
  });

  test('a repeated heading gets -1, -2; explicit <a id> anchors count; headings in code blocks do not', () => {
    const anchors = anchorsOf(
      [
        '# Notes',
        '## Example',
        '## Example',
        '### Example',
        '<a id="credentials"></a>',
        '```md',
        '## Hidden',
        '```',
      ].join('\n'),
    );
    assert.deepEqual([...anchors].sort(), ['credentials', 'example', 'example-1', 'example-2', 'notes']);
  });

  test('links in code blocks and code spans are not links; reference definitions and hrefs are', () => {
    const links = linksOf(
      [
        'See [a](a.md#x) and `[b](b.md)`.',
        '```bash',
        'echo "[c](c.md)"',
        '```',
        '  ```',
        '  [d](d.md)',
        '  ```',
        '[e]: e.md',
        '<a href="f.md">f</a> ![g](<g g.png> "title")',
      ].join('\n'),
    );
    assert.deepEqual(links, [
      { line: 1, target: 'a.md#x' },
      { line: 8, target: 'e.md' },
      { line: 9, target: 'g g.png' },
      { line: 9, target: 'f.md' },
    ]);
  });

  test('a link to a missing file, a missing heading or a line past the end is broken; external links are not checked', () => {
    const readme = join(ROOT, 'README.md');
    const anchors = (path: string) => anchorsOf(readFileSync(path, 'utf8'));
    assert.equal(brokenReason(readme, 'docs/operations.md', anchors), undefined);
    assert.equal(brokenReason(readme, 'docs/no-such-page.md', anchors), 'docs/no-such-page.md does not exist');
    assert.equal(
      brokenReason(readme, 'docs/operations.md#no-such-heading', anchors),
      'docs/operations.md has no heading #no-such-heading',
    );
    assert.equal(brokenReason(readme, '#no-such-heading', anchors), 'README.md has no heading #no-such-heading');
    assert.equal(brokenReason(readme, 'package.json#L1', anchors), undefined);
    assert.match(
      brokenReason(readme, 'package.json#L100000', anchors) ?? '',
      /^package\.json has \d+ lines, not 100000$/,
    );
    assert.equal(brokenReason(readme, '../outside.md', anchors), '../outside.md is outside the repository');
    assert.equal(brokenReason(readme, 'https://example.com/missing#nowhere', anchors), undefined);
  });
});

describe('links of README.md, docs/ and examples/', () => {
  const anchorCache = new Map<string, Set<string>>();
  const anchorsOfFile = (path: string): Set<string> => {
    let anchors = anchorCache.get(path);
    if (!anchors) anchorCache.set(path, (anchors = anchorsOf(readFileSync(path, 'utf8'))));
    return anchors;
  };
  const files = markdownFiles();

  test('there are links to check', () => {
    const count = files.reduce((n, f) => n + linksOf(readFileSync(f, 'utf8')).length, 0);
    assert.ok(count > 50, `only ${count} links found: is the link parser broken?`);
  });

  for (const file of files) {
    test(`every relative link of ${relative(ROOT, file)} resolves`, () => {
      const broken = linksOf(readFileSync(file, 'utf8')).flatMap(({ line, target }) => {
        const reason = brokenReason(file, target, anchorsOfFile);
        return reason ? [`${relative(ROOT, file)}:${line}: (${target}): ${reason}`] : [];
      });
      assert.deepEqual(broken, []);
    });
  }
});
