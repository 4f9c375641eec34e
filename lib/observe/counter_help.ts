/**
 * What each per-queue counter means, for the HELP line of its Prometheus metric, and the metric's name.
 * Counters this table does not know (one just added to the native record) still get a metric and a
 * HELP line that names them; add their meaning here.
 */

/** Meanings, written for `queue` labels in DPDK's naming: rx_q* is the guest's TX, tx_q* its RX. */
const HELP: Record<string, string> = {
  packets: 'Frames the queue moved: taken from the guest on rx_q*, given to the guest on tx_q*.',
  good_packets: 'Frames the queue moved: taken from the guest on rx_q*, given to the guest on tx_q*.',
  bytes: 'Bytes of the frames the queue moved, without the virtio-net header.',
  good_bytes: 'Bytes of the frames the queue moved, without the virtio-net header.',
  drops: 'Frames dropped: the other side could not take them (receive buffers too small for the frame, a failed tap write).',
  missed_pkts: 'Frames dropped: the other side could not take them (receive buffers too small for the frame, a failed tap write).',
  errors: 'Malformed descriptor chains from the guest (returned unused) and queues broken by what the guest wrote.',
  kicks: 'Guest-to-device notifications (kicks) that woke the worker.',
  calls: 'Device-to-guest notifications (call eventfd writes), sent only when the guest asked for them.',
  guest_notifications: 'Device-to-guest notifications (call eventfd writes), sent only when the guest asked for them.',
  calls_suppressed: 'Bursts that returned buffers without notifying the guest, because it asked not to be (EVENT_IDX, NO_INTERRUPT).',
  guest_notifications_suppressed:
    'Bursts that returned buffers without notifying the guest, because it asked not to be (EVENT_IDX, NO_INTERRUPT).',
  call_errors: 'Device-to-guest notifications that failed (the call eventfd write returned an error).',
  guest_notifications_error: 'Device-to-guest notifications that failed (the call eventfd write returned an error).',
  multicast: 'Frames moved whose destination MAC is multicast (broadcast not included).',
  multicast_packets: 'Frames moved whose destination MAC is multicast (broadcast not included).',
  broadcast: 'Frames moved whose destination MAC is ff:ff:ff:ff:ff:ff.',
  broadcast_packets: 'Frames moved whose destination MAC is ff:ff:ff:ff:ff:ff.',
  undersize: 'Frames moved shorter than 64 bytes (without the virtio-net header).',
  undersize_packets: 'Frames moved shorter than 64 bytes (without the virtio-net header).',
  capture_drops: 'Frames a running pcap capture had no room for in its ring (the writer fell behind); not captured.',
  capture_dropped: 'Frames a running pcap capture had no room for in its ring (the writer fell behind); not captured.',
};

/** A size bin (`size_65_127_packets`, `size65To127`, `size1519ToMax` ...) explained from its bounds. */
function sizeBinHelp(snake: string): string | undefined {
  const m = /^size_(\d+)(?:_(?:to_)?(\d+|max))?(?:_packets)?$/.exec(snake);
  if (!m) return undefined;
  const range = m[2] === undefined ? `of ${m[1]} bytes` : m[2] === 'max' ? `of ${m[1]} bytes or more` : `of ${m[1]} to ${m[2]} bytes`;
  return `Frames moved ${range} (without the virtio-net header).`;
}

/** `guestNotifications` -> `guest_notifications`, `size64` -> `size_64`; anything outside [a-z0-9_] becomes `_`. */
export function snakeCase(name: string): string {
  const words = /[A-Z]/.test(name) ? name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([a-zA-Z])([0-9])/g, '$1_$2') : name;
  return words.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

/** The counter's Prometheus name: `vhost_user_queue_<name>_total`. */
export function metricName(counter: string): string {
  return `vhost_user_queue_${snakeCase(counter).replace(/_total$/, '')}_total`;
}

export function counterHelp(counter: string): string {
  const snake = snakeCase(counter);
  return (
    HELP[counter] ??
    HELP[snake] ??
    sizeBinHelp(snake) ??
    `Per-queue counter '${counter}' of device.stats() (its meaning is not described in lib/observe/counter_help.ts yet).`
  );
}
