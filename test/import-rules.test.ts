/**
 * The import rules of lib/ (.dependency-cruiser.cjs, run by `npm run lint`): each rule is shown to
 * catch what it is for on a small tree made here, and the real lib/ keeps to them.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const config = path.join(root, '.dependency-cruiser.cjs');
const depcruise = path.join(root, 'node_modules/.bin/depcruise');

interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
}

/**
 * Runs the project's import check over lib/ of `dir` as `npm run lint` does, for its exit status (the
 * number of errors), and again for the violations, each as one line (a cycle is reported once, from
 * either of its files, so it is named by both).
 */
function checkImports(dir: string): { status: number | null; found: string[]; stderr: string } {
  const lint = spawnSync(depcruise, ['--config', config, 'lib'], { cwd: dir, encoding: 'utf8' });
  const r = spawnSync(depcruise, ['--config', config, '--output-type', 'json', 'lib'], { cwd: dir, encoding: 'utf8' });
  const violations: Violation[] = r.stdout ? JSON.parse(r.stdout).summary.violations : [];
  const found = violations.map(({ rule, from, to }) =>
    rule.name === 'no-cycle' ? `no-cycle: ${[from, to].sort().join(' <-> ')}` : `${rule.name}: ${from} -> ${to}`,
  );
  return { status: lint.status, found: found.sort(), stderr: `${lint.stdout}\n${r.stderr}` };
}

const fixture = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-imports-'));
afterAll(() => fs.rmSync(fixture, { recursive: true, force: true }));

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(path.join(fixture, file)), { recursive: true });
  fs.writeFileSync(path.join(fixture, file), text);
}

describe('import rules', () => {
  it('report a cycle closed by a type-only import, and protocol/ importing net/', () => {
    // A cycle of which one edge exists only for the type checker.
    write('lib/protocol/session.ts', "import { run } from './handlers';\nexport class Session { go(): void { run(this); } }\n");
    write('lib/protocol/handlers.ts', "import type { Session } from './session';\nexport function run(s: Session): void { void s; }\n");
    // The protocol reaching up into a device kind.
    write('lib/protocol/codec.ts', "import { NetDevice } from '../net/device';\nexport const device = new NetDevice();\n");
    write('lib/net/device.ts', "import { fail } from '../errors';\nexport class NetDevice { broken(): never { return fail(); } }\n");
    write('lib/errors.ts', "export function fail(): never { throw new Error('x'); }\n");

    const { status, found, stderr } = checkImports(fixture);
    expect(found, stderr).toEqual([
      'no-cycle: lib/protocol/handlers.ts <-> lib/protocol/session.ts',
      'protocol-knows-no-device: lib/protocol/codec.ts -> lib/net/device.ts',
    ]);
    expect(status).toBe(found.length);
  });

  it('hold for the real lib/', () => {
    const { status, found, stderr } = checkImports(root);
    expect(found, stderr).toEqual([]);
    expect(status).toBe(0);
  });
});
