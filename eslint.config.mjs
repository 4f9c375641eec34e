// ESLint for the TypeScript of lib/ and test/ (and the few JavaScript build files): the recommended
// rules of ESLint and typescript-eslint, minus what the code does on purpose (see the rules below).
// Formatting is Prettier's business (.prettierrc), not ESLint's. Run by `npm run lint`.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'build/', 'build-asan/', 'node_modules/', 'bench/results/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    rules: {
      // The package is CommonJS and uses require() where it means it: the addon from a computed path
      // (lib/binding.ts), the benchmark loaded only when asked for (lib/cli.ts).
      '@typescript-eslint/no-require-imports': 'off',
      // `catch {}` is how the code says "best effort, nothing to do when it fails".
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    // The house limits (ARCHITECTURE.md): no source file over ~600 lines, no function over ~80.
    // Test files are exempt from the function limit: a describe() callback holds a whole suite.
    files: ['lib/**/*.ts', 'test/**/*.ts'],
    rules: { 'max-lines': ['error', { max: 600, skipBlankLines: true, skipComments: true }] },
  },
  {
    files: ['lib/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }] },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
  },
  {
    files: ['**/*.mjs', '**/*.mts'],
    languageOptions: { globals: globals.node },
  },
);
