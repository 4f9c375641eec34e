/**
 * The libvirt domain in README.md ("Connecting a QEMU VM") is valid libvirt XML: libvirt's own
 * schema says so (virt-xml-validate, Debian libvirt-clients with libxml2-utils for xmllint). A
 * broken copy of it must fail the same check, so that the check is known to look.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasProgram, missing, skipUnless } from './helpers/peers';

const README = path.resolve(__dirname, '../README.md');

/** The README's one xml block. */
function readmeDomain(): string {
  const blocks = [...fs.readFileSync(README, 'utf8').matchAll(/```xml\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks).toHaveLength(1);
  return blocks[0];
}

function validate(xml: string): { status: number | null; output: string } {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-libvirt-')), 'domain.xml');
  fs.writeFileSync(file, xml);
  const r = spawnSync('virt-xml-validate', [file, 'domain'], { encoding: 'utf8' });
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe("README's libvirt domain", () => {
  const reason = missing([
    [hasProgram('virt-xml-validate'), 'virt-xml-validate (apt-get install libvirt-clients)'],
    [hasProgram('xmllint'), 'xmllint (apt-get install libxml2-utils)'],
  ]);

  it("validates against libvirt's domain schema, with a vhostuser interface and shared memory", () => {
    if (skipUnless(reason, 'libvirt snippet')) return;
    const xml = readmeDomain();
    expect(xml).toContain("<interface type='vhostuser'>");
    expect(xml).toContain("<access mode='shared'/>");
    expect(xml).toContain("path='/tmp/vhost-user-net.sock'"); // the README's socket
    const r = validate(xml);
    expect(r.output).toContain('validates');
    expect(r.status).toBe(0);
  });

  it('and the same check refuses a broken copy of it', () => {
    if (skipUnless(reason, 'libvirt snippet')) return;
    const broken = readmeDomain().replace("<interface type='vhostuser'>", "<interface type='vhost-user'>");
    expect(validate(broken).status).not.toBe(0);
  });
});
