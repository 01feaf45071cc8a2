import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const QUERY_BUILDER = [
  { name: 'kysely', message: 'Queries live in src/store/: add or use a repository method there.' },
  { name: 'pg', message: 'Database connections live in src/store/.' },
];
const COMMANDS = { group: ['**/commands/*'], message: 'Only src/commands/ wires the layers together (bootstrap); nothing below it imports a command.' };
const UPPER_LAYERS = { group: ['**/commands/*', '**/web/*', '**/web/**/*', '**/api/*', '**/api/**/*'], message: 'Dependencies point one way: web, api and commands use this layer, never the reverse.' };

export default tseslint.config(
  { ignores: ['node_modules/', 'data/', 'test-results/', 'docs/screenshots/', '.scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-console': 'off',
    },
  },
  {
    // Every query has one home: other code asks a repository, so both engines are tested through it.
    files: ['src/**/*.ts', 'examples/**/*.ts'],
    ignores: ['src/store/**', 'src/emulator/**'],
    rules: { 'no-restricted-imports': ['error', { paths: QUERY_BUILDER }] },
  },
  {
    // Dependencies point one way: commands wires everything, and nothing below web and api imports them (or commands).
    files: ['src/{config,identity,directory,tenants,events,jobs}/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: QUERY_BUILDER, patterns: [UPPER_LAYERS] }] },
  },
  {
    files: ['src/store/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [UPPER_LAYERS] }] },
  },
  {
    files: ['src/web/**/*.ts', 'src/api/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: QUERY_BUILDER, patterns: [COMMANDS] }] },
  },
  {
    files: ['src/web/assets/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
  },
);
