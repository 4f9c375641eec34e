/**
 * The tap port: the device's frames go to a Linux tap interface and come from it
 * (native/net/ports/tap.cc). The virtio-net header passes through unchanged, so the host kernel does
 * the checksum and segmentation offloads the guest negotiated. The tap is multiqueue: each queue pair
 * (--queues) is one queue of the interface.
 */
import { bit } from '../../protocol/constants';
import { VirtioNetFeature } from '../features';
import { definePort } from './port';

/** Linux interface names: IFNAMSIZ (16) with its terminating NUL. */
const MAX_IFNAME = 15;

/** What is wrong with a tap interface name, or undefined (also the kernel vhost-net front-end's check). */
export function tapNameProblem(name: unknown): string | undefined {
  return String(name).length > MAX_IFNAME || !/^[A-Za-z0-9_.-]+$/.test(String(name))
    ? `must be 1..${MAX_IFNAME} characters of [A-Za-z0-9_.-]`
    : undefined;
}

/**
 * Checksum and TCP segmentation both ways: the tap takes them as the guest wrote them. The kernel
 * vhost-net front-end (lib/frontend/vhost_kernel_transport.ts) offers the same over its tap.
 */
export const TAP_OFFLOADS =
  bit(VirtioNetFeature.CSUM) |
  bit(VirtioNetFeature.GUEST_CSUM) |
  bit(VirtioNetFeature.HOST_TSO4) |
  bit(VirtioNetFeature.HOST_TSO6) |
  bit(VirtioNetFeature.HOST_ECN) |
  bit(VirtioNetFeature.GUEST_TSO4) |
  bit(VirtioNetFeature.GUEST_TSO6) |
  bit(VirtioNetFeature.GUEST_ECN);

export const tap = definePort({
  name: 'tap',
  help: 'a Linux tap interface (see --tap);',
  options: [
    {
      key: 'tap',
      flag: 'tap',
      label: 'tap interface name',
      type: 'string',
      metavar: 'NAME',
      required: true,
      selectsPort: true,
      check: tapNameProblem,
      help:
        'connect the device to the Linux tap interface NAME (implies --port tap),\n' +
        'creating it if absent (needs root or CAP_NET_ADMIN). Checksum and TSO offloads\n' +
        'the guest negotiates are passed to the host kernel. Bring the interface up and\n' +
        'address it on the host side as usual (ip link set NAME up). One --socket only.\n' +
        'The tap is multiqueue: each of --queues N pairs is one tap queue (an existing\n' +
        'tap must have been made with `ip tuntap add NAME mode tap vnet_hdr multi_queue`).',
    },
  ],
  features: TAP_OFFLOADS,
  singleDevice: true,
  describe: ({ tap }) => ` ${tap}`,
  native: ({ tap }) => ({ tap: String(tap) }),
});
