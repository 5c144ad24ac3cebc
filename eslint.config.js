// Lint rules for the whole monorepo. The layering below is the design's dependency table
// (../shared/DESIGN.md): a package may import only the packages listed for it.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import prettier from 'eslint-config-prettier';

/** Which workspace packages each package may import. */
const layers = {
  protocol: [],
  telemetry: ['protocol'],
  runtime: ['protocol', 'telemetry'],
  oci: ['protocol'],
  gitops: ['protocol'],
  pipeline: ['protocol', 'oci', 'gitops', 'runtime'],
  core: ['protocol', 'telemetry', 'oci', 'gitops', 'pipeline'],
  agent: ['protocol', 'telemetry', 'oci', 'gitops'],
  cli: ['protocol', 'telemetry', 'runtime', 'oci', 'gitops', 'pipeline', 'core', 'agent'],
  web: ['protocol'],
};
const allPackages = Object.keys(layers);

const layerRules = Object.entries(layers).map(([pkg, allowed]) => ({
  files: [`packages/${pkg}/**/*.ts`, `packages/${pkg}/**/*.tsx`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            // `@aiedge/<name>/testing`: test helpers (sources only, not in the build) for other packages' tests.
            group: ['@aiedge/*/*', '!@aiedge/*/testing'],
            message: 'Import a package through its public entry (@aiedge/<name>), never its files.',
          },
          {
            group: ['../../*/src/*', '../../../*/src/*', '**/packages/*/src/*'],
            message: 'Reach another package through @aiedge/<name>, never by a relative path.',
          },
          ...allPackages
            .filter((p) => p !== pkg && !allowed.includes(p))
            .map((p) => ({
              group: [`@aiedge/${p}`],
              message: `${pkg} must not depend on ${p} (see the dependency table in DESIGN.md).`,
            })),
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.aiedge/**', 'bench-results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
    plugins: { 'import-x': importX },
    languageOptions: {
      parserOptions: { projectService: false },
    },
    settings: {
      'import-x/resolver': { node: { extensions: ['.ts', '.js'] } },
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-self-import': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    // Entry points and scripts talk to the terminal.
    files: [
      'packages/cli/src/**/*.ts',
      'packages/runtime/src/bin.ts',
      'packages/*/bench/**/*.ts',
      'scripts/**',
      'packages/cli/bin/**',
    ],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['**/*.test.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // The dashboard runs in the browser: no Node built-ins (its tests and build config run on Node).
    files: ['packages/web/**/*.ts', 'packages/web/**/*.tsx'],
    ignores: ['**/*.test.ts', 'packages/web/vite.config.ts'],
    rules: { 'import-x/no-nodejs-modules': 'error' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  ...layerRules,
  prettier,
);
