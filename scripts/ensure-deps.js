// Lets `npm start` and `npm test` work on a fresh clone: installs the locked npm dependencies when they are
// missing (plain JavaScript, because TypeScript runs through tsx, which is one of those dependencies).
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');

const root = join(__dirname, '..');
const needed = ['tsx', '@temporalio/worker', 'express', 'zod', 'yaml'];
if (needed.some((name) => !existsSync(join(root, 'node_modules', name, 'package.json')))) {
  process.stderr.write('Installing npm dependencies (npm ci) …\n');
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
