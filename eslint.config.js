import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', '.torture-build/**', 'node_modules/**', 'bench/results/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      // One better-sqlite3 build per Node version (src/sources/sqlite/driver.ts): version 12
      // loaded on Node 24 aborts the process at exit (WiseLibs/better-sqlite3#1515).
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { paths: [{ name: 'better-sqlite3', message: "Import Database from src/sources/sqlite/driver.ts (the build for this Node); 'import type' is fine.", allowTypeImports: true }] },
      ],
    },
  },
  { files: ['src/sources/sqlite/driver.ts'], rules: { '@typescript-eslint/no-restricted-imports': 'off' } },
  // The console runs in the browser (web/src); its build config runs in Node.
  { files: ['web/src/**'], languageOptions: { globals: { ...globals.browser } } },
);
