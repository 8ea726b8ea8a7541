// ESLint: typescript-eslint's recommended rules, plus the Temporal workflow sandbox rule: workflow code may not
// import Node built-ins or the heavy/side-effecting libraries (zod, yaml, simple-git, express), except as types.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const forbiddenInWorkflows = [
  ...builtinModules,
  ...builtinModules.map((m) => `node:${m}`),
  'zod',
  'yaml',
  'simple-git',
  'express',
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.ferry/**', '.tools/**', 'docs/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        URL: 'readonly',
        fetch: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        require: 'readonly',
        module: 'readonly',
        __dirname: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // Tests read JSON answers of HTTP servers and assert on them field by field.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: forbiddenInWorkflows.map((name) => ({
            name,
            message:
              'Workflow code runs in the deterministic sandbox: do I/O in activities/ and validate at the edges.',
            allowTypeImports: true,
          })),
          patterns: [
            {
              // pipeline/ids, reasons, freight-rules, event-types and layout are dependency-free domain modules workflows
              // share.
              group: [
                '../pipeline/*',
                '!../pipeline/event-types',
                '!../pipeline/ids',
                '!../pipeline/layout',
                '!../pipeline/freight-rules',
                '!../pipeline/reasons',
                '../activities/*',
                '../client/*',
                '../worker/*',
                '../dev/*',
                '../api/*',
                '../cli/*',
              ],
              message:
                'Workflows may only `import type` from pipeline/ and activities/ (their values pull zod, git, fs).',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
);
