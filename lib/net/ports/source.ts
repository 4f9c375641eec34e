/**
 * The source port: fills every receive buffer the guest posts with a generated frame of a fixed size
 * (native/net/ports/source.cc); the guest-RX figure of a benchmark.
 */
import { definePort } from './port';

/** Frame sizes the source port generates (Ethernet without FCS). */
export const MIN_SOURCE_FRAME = 60;
export const MAX_SOURCE_FRAME = 65535;
export const DEFAULT_SOURCE_FRAME = 64;
const ETHERNET_HEADER = 14;

export const source = definePort({
  name: 'source',
  help:
    'fills every receive buffer the guest posts with a generated frame\n' +
    '(broadcast, EtherType 0x88b5, a sequence number after the Ethernet\n' +
    'header) as fast as buffers come, and discards what the guest sends\n' +
    "(measures a guest's receive rate).",
  options: [
    {
      key: 'frameSize',
      flag: 'frame-size',
      label: 'frame size',
      type: 'integer',
      metavar: 'N',
      min: MIN_SOURCE_FRAME,
      max: MAX_SOURCE_FRAME,
      unit: ' bytes',
      default: DEFAULT_SOURCE_FRAME,
      help:
        'size of the frames the source port generates, bytes without FCS\n' +
        `(${MIN_SOURCE_FRAME}..${MAX_SOURCE_FRAME}, default ${DEFAULT_SOURCE_FRAME}).`,
    },
  ],
  check: ({ frameSize }, { mtu }) => {
    if (mtu === undefined || Number(frameSize) <= mtu + ETHERNET_HEADER) return undefined;
    return (
      `frame size ${frameSize} is larger than the MTU the device offers (${mtu}) plus the ${ETHERNET_HEADER}-byte Ethernet ` +
      'header: lower --frame-size or raise --mtu'
    );
  },
  describe: ({ frameSize }) => ` of ${frameSize}-byte frames`,
  native: ({ frameSize }) => ({ frameSize: Number(frameSize) }),
});
