#!/usr/bin/env node
// A virtio-net back-end whose frames are handled in JavaScript: every frame the guest sends comes
// back with its MAC addresses swapped (what testpmd's macswap and our loopback port do natively).
//
//   node examples/js-echo.mjs SOCKET [QUEUE_PAIRS]
//
// then point a front-end at SOCKET, e.g. QEMU:
//   -chardev socket,id=c0,path=SOCKET -netdev vhost-user,id=n0,chardev=c0
//   -device virtio-net-pci,netdev=n0 -object memory-backend-memfd,id=m0,size=1G,share=on -numa node,memdev=m0
// or DPDK: dpdk-testpmd --vdev=net_virtio_user0,path=SOCKET ...
// In a project that installed the package: import { VhostUserBackend } from 'vhost-user';
import { VhostUserBackend } from '../dist/index.js';

const [socketPath, pairs = '1'] = process.argv.slice(2);
if (!socketPath) {
  process.stderr.write('usage: node examples/js-echo.mjs SOCKET [QUEUE_PAIRS]\n');
  process.exit(2);
}

const backend = new VhostUserBackend({
  socketPath,
  device: { port: 'js', queuePairs: Number(pairs) },
  log: (level, message) => process.stderr.write(`${level}: ${message}\n`),
});
backend.start();
process.on('SIGINT', () => backend.close());
process.on('SIGTERM', () => backend.close());

// One loop per connection: frames() ends when the front-end disconnects, and waits for the next one.
for (;;) {
  try {
    for await (const batch of backend.device.frames()) {
      for (const frame of batch) {
        // In place, byte by byte: no subarray (an object per frame), no builtin call per frame.
        for (let i = 0; i < 6; i++) {
          const b = frame[i];
          frame[i] = frame[i + 6];
          frame[i + 6] = b;
        }
      }
      await backend.device.send(batch); // the views themselves: no copy
    }
  } catch (err) {
    if (err.code === 'ESHUTDOWN') break; // closed
    if (err.code !== 'ENOTCONN') throw err; // a send cut short by a disconnect: go on
  }
}
