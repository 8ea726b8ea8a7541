// The shell blocks of README.md and docs/: every one is run by test/e2e/walkthrough.test.ts against `npm start`,
// except those marked `<!-- not run: <reason> -->` on the line before the fence (things like `npm start` itself).
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface CommandBlock {
  /** e.g. `docs/api.md:82` (the fence line). */
  where: string;
  script: string;
  walkthrough: boolean;
  /** Why the block is not run, when marked so. */
  notRun?: string;
}

const SHELL_FENCE = /^( *)```(bash|sh|shell)\s*$/;

export function markdownFiles(root: string): string[] {
  const docs = readdirSync(join(root, 'docs'), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.md'))
    .map((e) => join(e.parentPath, e.name));
  return [join(root, 'README.md'), ...docs.sort()];
}

export function commandBlocks(root: string): CommandBlock[] {
  const blocks: CommandBlock[] = [];
  for (const file of markdownFiles(root)) {
    const lines = readFileSync(file, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const fence = SHELL_FENCE.exec(lines[i]);
      if (!fence) continue;
      const indent = fence[1];
      const end = lines.indexOf(`${indent}\`\`\``, i + 1);
      if (end < 0) throw new Error(`${relative(root, file)}:${i + 1}: unclosed code block`);
      const before = (lines[i - 1] ?? '').trim();
      const notRun = /^<!-- not run: (.+) -->$/.exec(before)?.[1];
      blocks.push({
        where: `${relative(root, file)}:${i + 1}`,
        script: lines
          .slice(i + 1, end)
          .map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line))
          .join('\n'),
        walkthrough: before.startsWith('<!-- walkthrough:start'),
        ...(notRun ? { notRun } : {}),
      });
      i = end;
    }
  }
  return blocks;
}
