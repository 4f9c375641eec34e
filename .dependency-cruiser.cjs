/**
 * Import rules for lib/, checked by `npm run lint` (`depcruise lib`); test/import-rules.test.ts shows
 * that each rule catches what it is for. Paths are relative to the folder depcruise runs in.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment:
        'A module cycle (type-only imports count too) means two files are one concept split badly: move what both need into a third file, or pass it in.',
      from: { path: '^lib/' },
      to: { circular: true },
    },
    {
      name: 'protocol-knows-no-device',
      severity: 'error',
      comment:
        'lib/protocol/ is the vhost-user protocol alone: it must not import the net device, the ports, the front-end, the back-end, the CLI, the benchmark or the observers. Declare what it needs as an interface in lib/protocol/ and let the device implement it.',
      from: { path: '^lib/protocol/' },
      to: { path: '^lib/(net|frontend|observe|bench|cli)(/|\\.ts$)|^lib/(backend|index)\\.ts$' },
    },
    {
      name: 'no-dev-dependency-in-lib',
      severity: 'error',
      comment: 'lib/ is what users install: a package it imports must be a dependency, not a devDependency.',
      from: { path: '^lib/' },
      to: { dependencyTypes: ['npm-dev'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Keep `import type` edges: a cycle through types is still a cycle in the design.
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.d.ts', '.js', '.json'] },
  },
};
