/**
 * DPDK testpmd for the end-to-end tests: the driver lives in lib/bench/testpmd.ts (the benchmark
 * uses it too); what is the tests' own is the CI rule for a missing DPDK.
 */
import { DEBIAN_PACKAGES, dpdkMissing } from '../../lib/bench/testpmd';
import { IN_CI } from '../helpers/peers';

export * from '../../lib/bench/testpmd';

/**
 * True when testpmd and the virtio PMD are installed. Outside CI a missing DPDK returns false (the
 * tests skip); in CI (`CI=true`) it throws, naming the packages to install.
 */
export function dpdkAvailable(): boolean {
  const missing = dpdkMissing();
  if (missing.length === 0) return true;
  if (IN_CI) {
    throw new Error(
      `DPDK end-to-end tests cannot run: missing ${missing.join(', ')}. ` +
        `Install with: apt-get install -y --no-install-recommends ${DEBIAN_PACKAGES.join(' ')}`,
    );
  }
  return false;
}
