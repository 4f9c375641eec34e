/**
 * The contract with the guest's /init (init.sh next to this file): the addresses it uses unless told
 * otherwise, and the lines it prints on the serial console (VHU-UP, VHU-RESULT, VHU-ERROR, VHU-DONE).
 */

export const GUEST_MAC = '52:54:00:12:34:56';
export const GUEST_IP = '10.0.2.15';
export const HOST_IP = '10.0.2.1';
export const PREFIX_LEN = 24;

/** A console line that means the guest will not get further: init.sh gave up, or the kernel panicked. */
export const GUEST_FAILURE = /^(VHU-ERROR .*|.*Kernel panic.*)$/m;

/** virtio and virtio-net feature bits by number (virtio 1.2, 5.1.3 and 6). */
export const VIRTIO_NET_FEATURE_NAMES: Readonly<Record<number, string>> = {
  0: 'CSUM',
  1: 'GUEST_CSUM',
  2: 'CTRL_GUEST_OFFLOADS',
  3: 'MTU',
  5: 'MAC',
  7: 'GUEST_TSO4',
  8: 'GUEST_TSO6',
  9: 'GUEST_ECN',
  10: 'GUEST_UFO',
  11: 'HOST_TSO4',
  12: 'HOST_TSO6',
  13: 'HOST_ECN',
  14: 'HOST_UFO',
  15: 'MRG_RXBUF',
  16: 'STATUS',
  17: 'CTRL_VQ',
  18: 'CTRL_RX',
  19: 'CTRL_VLAN',
  20: 'CTRL_RX_EXTRA',
  21: 'GUEST_ANNOUNCE',
  22: 'MQ',
  23: 'CTRL_MAC_ADDR',
  24: 'NOTIFY_ON_EMPTY',
  27: 'ANY_LAYOUT',
  28: 'RING_INDIRECT_DESC',
  29: 'RING_EVENT_IDX',
  32: 'VERSION_1',
  33: 'ACCESS_PLATFORM',
  34: 'RING_PACKED',
  35: 'IN_ORDER',
  36: 'ORDER_PLATFORM',
  37: 'SR_IOV',
  38: 'NOTIFICATION_DATA',
  61: 'RSC_EXT',
  62: 'STANDBY',
};

/**
 * Names of the features set in the guest's view (`features=` of the link scenario: the virtio device's
 * sysfs `features`, one character per bit, bit 0 first).
 */
export function guestFeatureNames(bits: string): string[] {
  const names: string[] = [];
  for (let i = 0; i < bits.length; i++) if (bits[i] === '1') names.push(VIRTIO_NET_FEATURE_NAMES[i] ?? `bit${i}`);
  return names;
}

/** The console line `VHU-RESULT <scenario> k=v ...` of `scenario`. */
export function resultLine(scenario: string): RegExp {
  const esc = scenario.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^VHU-RESULT ${esc}(?: .*)?$`, 'm');
}

/** Fields of a `VHU-RESULT <scenario> k=v ...` line, or null if `line` is not one for `scenario`. */
export function parseResult(line: string, scenario?: string): Record<string, string> | null {
  const m = /^VHU-RESULT (\S+)(?: (.*))?$/.exec(line.trim());
  if (!m || (scenario !== undefined && m[1] !== scenario)) return null;
  const fields: Record<string, string> = { scenario: m[1] };
  for (const word of (m[2] ?? '').split(/\s+/).filter(Boolean)) {
    const eq = word.indexOf('=');
    if (eq > 0) fields[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return fields;
}

/** Waits (with a guest's waitFor) for the result line of `scenario` and returns its fields. */
export async function waitForResult(
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>,
  scenario: string,
  timeoutMs?: number,
): Promise<Record<string, string>> {
  const m = await waitFor(resultLine(scenario), timeoutMs);
  return parseResult(m[0], scenario) as Record<string, string>;
}
