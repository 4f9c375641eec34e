/** vhost-user: vhost-user device back-ends (virtio-net) for Node.js. */
export { VhostUserBackend, type BackendOptions } from './backend';
export { VhostUserError } from './errors';
export { NetDevice, type NetDeviceOptions, type PortKind } from './net/device';
export { Switch, type AttachOptions, type MacEntry, type SwitchCounters, type SwitchOptions, type SwitchPort } from './net/switch';
export { DPDK_NAMES, STAT_NAMES, dpdkQueueName, formatStats, type QueueStats, type StatName } from './net/stats';
export type { CaptureCounts, CaptureOptions, PcapCapture } from './observe/pcap';
export { serveMetrics, type MetricsServer, type MetricsServerOptions } from './observe/server';
export { switchMetrics } from './observe/switch_metrics';
export type { MetricsSource } from './observe/readings';
export type { Logger, LogLevel } from './protocol/session';
export type { VhostUserDevice, VringAddresses } from './protocol/device';
export { GuestMemory, type GuestMemoryOptions } from './frontend/guest_memory';
export { VhostUserFrontend } from './frontend/frontend';
export { VirtioNetDriver, type NetDriverOptions, type TxLayout, type VhostNetOptions } from './frontend/net_driver';
export type { VhostTransport, RingAddresses, DeviceOffer } from './frontend/transport';
export * as protocol from './protocol/constants';
export { VirtioNetFeature } from './net/features';
